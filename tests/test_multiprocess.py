"""One suite over several devices and processes (SPEC §10), through ``pytest --cnnbench`` as users run it: two
processes of one ``jax.distributed`` job on this machine (CPU collectives) against one process alone, and the
``--cnnbench-devices`` usage errors. Each run is a subprocess: a process's device count and distributed state are
fixed once JAX starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cnnbench.devices import distributed_request

FILTERS = ("--cnnbench-quadrant=q4", "--cnnbench-head=gap", "--cnnbench-strategy=s1")  # pretrained: base, similarity
LOSS_TOLERANCE = 1e-6  # fp32: two devices sum each gradient in two partial sums (tests/test_data_parallel.py)


def pytest_run(tmp_path: Path, suite: Path, cache: Path, report: str, *options: str, env: dict | None = None):
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--cnnbench", f"--cnnbench-suite={suite}",
               f"--cnnbench-cache={cache}", f"--cnnbench-report={tmp_path / report}", *options]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.Popen(command, cwd=tmp_path, env=environ | (env or {}), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_run_a_suite_as_one_process_does_and_only_the_first_writes(
    tmp_path: Path, tiny_suite_text: str, shared_cache: Path
) -> None:
    """Two processes of one job (the shape of a two-host slice) train each scenario over both processes' devices
    and give one process's accuracies and losses; process 0 alone pretrains (the other receives the base), writes
    the cache and the report. The job's cache starts empty; the run alone shares the session's."""
    suite = tmp_path / "tiny.toml"
    suite.write_text(tiny_suite_text)
    port = free_port()
    job = [pytest_run(tmp_path, suite, tmp_path / "cache", f"process{i}", *FILTERS,
                      env={"JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2",
                           "JAX_PROCESS_ID": str(i)}) for i in range(2)]  # fmt: skip
    alone = pytest_run(tmp_path, suite, shared_cache, "alone", *FILTERS)
    outputs = [p.communicate(timeout=500)[0] for p in (*job, alone)]
    assert [p.returncode for p in (*job, alone)] == [0, 0, 0], outputs
    assert "process 1 of 2: every scenario spans the 2 devices of all processes" in outputs[1]
    assert "pretraining lenet5: step" in outputs[0] and "pretraining lenet5: step" not in outputs[1]
    assert not (tmp_path / "process1").exists()  # process 0 writes the report
    shared = json.loads((tmp_path / "process0" / "latest" / "report.json").read_text())
    single = json.loads((tmp_path / "alone" / "latest" / "report.json").read_text())
    env = shared["environment"]
    assert (env["process_count"], env["device_count"], env["parallel_devices"]) == (2, 2, 2)
    assert single["environment"]["parallel_devices"] == 1 and env["fingerprint"] != single["environment"]["fingerprint"]
    ids = [[s["id"] for s in report["scenarios"]] for report in (shared, single)]
    assert ids == [["lenet5-s1-q4-gap"]] * 2
    for mine, theirs in zip(shared["scenarios"], single["scenarios"], strict=True):
        assert mine["status"] == theirs["status"] == "passed"
        assert abs(mine["metrics"]["test_accuracy"] - theirs["metrics"]["test_accuracy"]) <= 0.005
        for a, b in zip(mine["curve"], theirs["curve"], strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=LOSS_TOLERANCE, abs=LOSS_TOLERANCE)
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=LOSS_TOLERANCE, abs=LOSS_TOLERANCE)
    (target,) = shared["targets"]  # the similarity, measured over both processes, agrees too
    assert target["similarity"] == pytest.approx(single["targets"][0]["similarity"], abs=1e-5)


@pytest.mark.parametrize(
    "devices, message",
    [
        ("0", "--cnnbench-devices '0': expected a device count (1, 2, …) or all"),
        ("5", "--cnnbench-devices 5: JAX sees 3 device(s) (cpu); pass at most 3 or all"),
        ("3", "--cnnbench-devices 3: the global batch 32 of q3 does not divide over 3 devices; choose a device count "
              "that divides 32, or a [train] batch_size that is a multiple of 3"),
    ],
)  # fmt: skip
def test_a_device_count_that_cannot_split_the_batch_is_a_usage_error(
    tmp_path: Path, tiny_suite_text: str, devices: str, message: str
) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(tiny_suite_text)
    run = pytest_run(tmp_path, suite, tmp_path / "cache", "reports", f"--cnnbench-devices={devices}",
                     env={"XLA_FLAGS": "--xla_force_host_platform_device_count=3"})  # fmt: skip
    output = run.communicate(timeout=120)[0]
    assert run.returncode == pytest.ExitCode.USAGE_ERROR and message in output, output
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "environ, request_",
    [
        ({}, None),
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"},
         {"num_processes": 4, "process_id": 3}),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}, {}),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, None),
        ({"OMPI_MCA_orte_hnp_uri": "1531576320.0;tcp://10.96.0.1:34911"}, {}),
        ({"TPU_WORKER_HOSTNAMES": "t1k-0,t1k-1"}, {}),
        ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),
    ],
)  # fmt: skip
def test_the_environment_says_whether_a_process_joins_a_job(environ: dict, request_: dict | None) -> None:
    assert distributed_request(environ) == request_


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"JAX_COORDINATOR_ADDRESS": "h:1"}, "JAX_COORDINATOR_ADDRESS set without JAX_NUM_PROCESSES, JAX_PROCESS_ID"),
        ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "set without JAX_COORDINATOR_ADDRESS"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
         "JAX_PROCESS_ID=2 must be at least 0 and below JAX_NUM_PROCESSES=2"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "must be integers"),
    ],
)  # fmt: skip
def test_a_partial_job_description_is_refused_naming_what_is_missing(environ: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        distributed_request(environ)
