"""The hardware table of docs/benchmarks.md: ``cnnbench bench --json`` rows, with PyTorch's images/s beside them
where ``scripts/bench_torch.py --json`` timed the same arch × batch × precision × mode.

    cnnbench bench --batch 1,32 --json > jax.json
    /tmp/torch-venv/bin/python scripts/bench_torch.py --batch 1,32 --json > torch.json
    python scripts/hardware_table.py jax.json --torch torch.json

Several ``--json`` files of either side (one per arch, say) join into one table, in the order given.
"""

from __future__ import annotations

import argparse
import json


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _load(path: str) -> list[dict]:
    with open(path) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cnnbench", nargs="+", help="cnnbench bench --json output(s)")
    parser.add_argument("--torch", nargs="*", default=[], help="scripts/bench_torch.py --json output(s)")
    args = parser.parse_args()
    rows = [row for path in args.cnnbench for row in _load(path)]
    torch = {(r["arch"], r["batch"], r["precision"], r["mode"]): r["images_per_s"]
             for path in args.torch for r in _load(path)}  # fmt: skip
    print(
        "| arch | mode | batch | precision | img/s | [slowest–fastest] | ms/step | compile s | memory (XLA) MiB "
        "| GMACs/img | TFLOP/s | util % | PyTorch img/s | JAX/PyTorch |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        key = (r["arch"], r["batch"], r["precision"], r["mode"])
        theirs = torch.get(key)
        ours = r["images_per_s"]
        if ours is None:
            print(f"| {key[0]} | {key[3]} | {key[1]} | {key[2]} | {r['status']} | | | | | | | | {_rate(theirs)} | |")
            continue
        spread = f"{_rate(r['images_per_s_low'])}–{_rate(r['images_per_s_high'])}"
        util = "-" if r["utilisation"] is None else f"{100 * r['utilisation']:.0f}"
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        print(f"| {key[0]} | {key[3]} | {key[1]} | {key[2]} | {_rate(ours)} | {spread} | {r['step_ms']:,.1f} | "
              f"{r['compile_s']:.1f} | {r['memory_bytes'] / 2**20:,.1f} | {r['gmacs_per_image']:.3g} | "
              f"{r['tflops']:.3f} | {util} | {_rate(theirs)} | {ratio} |")  # fmt: skip


if __name__ == "__main__":
    main()
