"""XLA:CPU's compiler options against its defaults, on the engine's own train step, in interleaved rounds.

XLA reads ``XLA_FLAGS`` once, when the backend starts, so each option runs in a worker process of its own: every
worker builds and compiles the engine's train step of the same case (``engine_cases``), then the workers take
turns, one round each, while the others wait, until every option has ``--rounds`` rounds. An option's figure is
its median round and its ratio to the defaults' median. The loss after the first step, on the same batch from the
same initialisation, says whether an option changes the numerics (the defaults' loss is the reference). An option
this build of XLA does not know makes its worker exit, and the table says so::

    python benchmarks/xla_cpu_options.py [ARCH ...] [--rounds 5] [--only "LLVM -O1,oneDNN"] [--json]

Options tried (``--only`` picks some): XNNPACK off (on by default, it runs dots and some convolutions), XNNPACK graph
fusion, XNNPACK library fusions, YNNPACK convolutions, oneDNN (only in builds with it), the legacy emitters instead
of the fusion emitters, 512-bit vectors, single-threaded Eigen, fast math (not exact: shown for its speed only), and
LLVM's optimisation level 1 and 0 (less compiling for a slower step). Each row also says what building the step
cost: compiling it, and everything before the first timed step (the model's initialisation included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from engine_cases import CASES, engine_step, standard_recipe

from cnnbench.engine.timing import calls_per_round

OPTIONS = {
    "defaults": "",
    "no XNNPACK": "--xla_cpu_use_xnnpack=false",
    "XNNPACK graph fusion": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "XNNPACK dot+eltwise+reduce": "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
    "YNNPACK convolutions": "--xla_cpu_experimental_ynn_fusion_type=individual_dot,individual_convolution",
    "oneDNN": "--xla_cpu_use_onednn=true",
    "legacy emitters": "--xla_cpu_use_fusion_emitters=false",
    "512-bit vectors": "--xla_cpu_prefer_vector_width=512",
    "single-threaded Eigen": "--xla_cpu_multi_thread_eigen=false",
    "fast math (inexact)": "--xla_cpu_enable_fast_math=true",
    "LLVM -O1": "--xla_backend_optimization_level=1",
    "LLVM -O0": "--xla_backend_optimization_level=0",
    "LLVM -O0 + legacy emitters": "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false",
}


def worker(arch: str) -> None:
    """Build the case's step under this process's ``XLA_FLAGS``, say so on stdout, then answer the driver's
    commands on stdin: ``calibrate S`` (calls per round of at least S seconds) and ``round N`` (seconds per call
    over N calls)."""
    case = CASES[arch]
    x, y = case.batch_data()
    t0 = time.perf_counter()
    built = engine_step(case, standard_recipe(), x, y)
    built_in = {"setup_s": time.perf_counter() - t0, "compile_s": built.compile_s}
    print(json.dumps({**built_in, "loss": built.loss, "params": built.params}), flush=True)
    for line in sys.stdin:
        command, value = line.split()
        if command == "calibrate":
            print(calls_per_round(built.step, float(value)), flush=True)
        else:
            calls = int(value)
            t0 = time.perf_counter()
            for _ in range(calls):
                built.step()
            print((time.perf_counter() - t0) / calls, flush=True)


class Worker:
    """A worker process of one option and the driver's end of its pipes; its error output goes to a temporary
    file, which no amount of warnings can fill the way a pipe nobody reads fills."""

    def __init__(self, arch: str, flags: str) -> None:
        env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip())
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115  # closed in close(), with the process
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", arch],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        self.calls = 1

    def ready(self) -> dict[str, Any] | str:
        """What the worker built, or why it exited: the last line of its error output."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line:
            return json.loads(line)
        code = self.process.wait()
        self.errors.seek(0)
        errors = [e for e in self.errors.read().splitlines() if e.strip()]
        return errors[-1] if errors else f"exited with {code}"

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()
        self.errors.close()


def compare(arch: str, rounds: int, min_round_s: float, options: list[str]) -> list[dict[str, Any]]:
    """One row per option of ``options`` (the defaults first): its build (or why it failed) and its median step
    time over interleaved rounds."""
    rows, workers = [], {}
    for label in ["defaults", *(o for o in options if o != "defaults")]:
        flags = OPTIONS[label]  # one at a time: compiling shares the cores too
        w = Worker(arch, flags)
        built = w.ready()
        if isinstance(built, str):
            rows.append({"arch": arch, "option": label, "flags": flags, "error": built})
            w.close()
            continue
        w.calls = int(w.ask(f"calibrate {min_round_s}"))
        workers[label] = w
        rows.append({"arch": arch, "option": label, "flags": flags, **built, "times": []})
        print(f"{arch} {label}: compiled in {built['compile_s']:.1f} s, loss {built['loss']:.6f}", file=sys.stderr)
    by_label = {r["option"]: r for r in rows}
    for _ in range(rounds):
        for label, w in workers.items():
            by_label[label]["times"].append(float(w.ask(f"round {w.calls}")))
    for w in workers.values():
        w.close()
    reference = by_label["defaults"]
    for r in rows:
        if "times" in r:
            r["step_ms"] = 1e3 * statistics.median(r["times"])
            r["speedup"] = statistics.median(reference["times"]) / statistics.median(r["times"])
            r["loss_change"] = r["loss"] - reference["loss"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=["lenet5", "resnet18"], help=f"any of {', '.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-round-s", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="JSON rows instead of a markdown table")
    parser.add_argument("--only", help=f"comma-separated options to try beside the defaults, of: {', '.join(OPTIONS)}")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.archs[0])
        return
    unknown = [a for a in args.archs if a not in CASES]
    if unknown:
        parser.error(f"unknown arch {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    options = list(OPTIONS) if args.only is None else args.only.split(",")
    if unknown := [o for o in options if o not in OPTIONS]:
        parser.error(f"unknown option {', '.join(unknown)}; the options are {', '.join(OPTIONS)}")
    rows = [row for arch in args.archs for row in compare(arch, args.rounds, args.min_round_s, options)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| model | option | XLA_FLAGS | step ms | speed-up | loss change after one step | compile s | build s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        name, flags = CASES[r["arch"]].name, f"`{r['flags']}`" if r["flags"] else "(none)"
        if "error" in r:
            print(f"| {name} | {r['option']} | {flags} | rejected: {r['error'][:80]} | | | | |")
        else:
            print(f"| {name} | {r['option']} | {flags} | {r['step_ms']:.2f} | {r['speedup']:.2f} "
                  f"| {r['loss_change']:+.1e} | {r['compile_s']:.1f} | {r['setup_s']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
