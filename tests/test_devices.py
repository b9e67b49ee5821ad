"""One GPU per pytest-xdist worker (SPEC §10): the variables each worker gets, the GPU count without JAX, and the
refusal to set variables that JAX, once imported, would ignore."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from cnnbench.devices import configure_worker, gpu_count, sharing_warning, worker_device_env

OWN = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def test_eight_workers_on_eight_gpus_get_one_each() -> None:
    environ = {"PYTEST_XDIST_WORKER_COUNT": "8"}
    assert worker_device_env("gw3", environ, 8) == {"CUDA_VISIBLE_DEVICES": "3"} | OWN
    assert [worker_device_env(f"gw{n}", environ, 8)["CUDA_VISIBLE_DEVICES"] for n in range(8)] == list("01234567")
    assert sharing_warning(8, 8) is None


def test_the_users_restriction_is_the_list_of_gpus() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "2,3", "PYTEST_XDIST_WORKER_COUNT": "3"}
    assert (
        worker_device_env("gw0", environ, 2)
        == {"CUDA_VISIBLE_DEVICES": "2", "XLA_PYTHON_CLIENT_MEM_FRACTION": ".45"} | OWN
    )
    assert worker_device_env("gw1", environ, 2) == {"CUDA_VISIBLE_DEVICES": "3"} | OWN  # alone on GPU 3: no cap
    assert worker_device_env("gw2", environ, 2)["CUDA_VISIBLE_DEVICES"] == "2"
    uuids = {"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb", "PYTEST_XDIST_WORKER_COUNT": "2"}
    assert worker_device_env("gw1", uuids, 2) == {"CUDA_VISIBLE_DEVICES": "GPU-bb"} | OWN


def test_more_workers_than_gpus_share_and_split_the_memory() -> None:
    environ = {"PYTEST_XDIST_WORKER_COUNT": "8"}
    assert (
        worker_device_env("gw5", environ, 2)
        == {"CUDA_VISIBLE_DEVICES": "1", "XLA_PYTHON_CLIENT_MEM_FRACTION": ".22"} | OWN
    )
    # 7 workers on 3 GPUs: GPU 0 serves gw0, gw3, gw6; GPU 1 serves gw1, gw4
    environ = {"PYTEST_XDIST_WORKER_COUNT": "7"}
    assert worker_device_env("gw6", environ, 3)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == ".30"
    assert worker_device_env("gw4", environ, 3)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == ".45"
    # without xdist's worker count, gw5 on 2 GPUs still knows that gw1 and gw3 share its GPU
    assert worker_device_env("gw5", {}, 2)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == ".30"
    message = sharing_warning(8, 2)
    assert message is not None and "8 xdist workers share 2 GPU(s), up to 4 per GPU" in message and "-n 2" in message


@pytest.mark.parametrize("count", [0, None])
def test_cpu_runs_are_untouched(count: int | None) -> None:
    assert worker_device_env("gw1", {"PYTEST_XDIST_WORKER_COUNT": "2"}, count) == {}
    assert sharing_warning(2, count) is None


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_gpus_the_user_hid_stay_hidden(hidden: str) -> None:
    assert worker_device_env("gw0", {"CUDA_VISIBLE_DEVICES": hidden}, 4) == {}


def test_the_users_memory_settings_are_kept() -> None:
    environ = {"XLA_PYTHON_CLIENT_PREALLOCATE": "true", "XLA_PYTHON_CLIENT_MEM_FRACTION": ".9"}
    assert worker_device_env("gw2", environ | {"PYTEST_XDIST_WORKER_COUNT": "4"}, 2) == {"CUDA_VISIBLE_DEVICES": "0"}


def test_a_controller_is_not_a_worker() -> None:
    with pytest.raises(ValueError, match="not a pytest-xdist worker id: 'master'; expected gw0"):
        worker_device_env("master", {}, 2)


def _fake_nvidia_smi(directory: Path, output: str, status: int = 0) -> None:
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{output}'\nexit {status}\n")
    script.chmod(0o755)


def test_gpu_count_reads_nvidia_smi_and_honours_the_users_restriction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA H100 (UUID: GPU-aa)\\nGPU 1: NVIDIA H100 (UUID: GPU-bb)\\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_count({}) == 2
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "1"}) == 1
    assert gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == gpu_count({"CUDA_VISIBLE_DEVICES": "-1"}) == 0


def test_gpu_count_is_zero_without_nvidia_smi_or_a_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "0,1"}) == 0  # no binary
    _fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it could not communicate with the driver\\n", 9)
    assert gpu_count({}) == 0


def test_configure_worker_sets_and_returns_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, "GPU 0: a\\nGPU 1: b\\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delitem(sys.modules, "jax")  # as in a fresh worker; restored after the test
    environ = {"PYTEST_XDIST_WORKER_COUNT": "2", "HOME": "/home/me"}
    assert configure_worker("gw1", environ) == {"CUDA_VISIBLE_DEVICES": "1"} | OWN
    assert environ == {"PYTEST_XDIST_WORKER_COUNT": "2", "HOME": "/home/me", "CUDA_VISIBLE_DEVICES": "1"} | OWN


def test_configure_worker_refuses_once_jax_is_imported() -> None:
    assert jax.__name__ in sys.modules
    environ: dict[str, str] = {}
    with pytest.raises(RuntimeError, match="worker gw0: JAX is already imported"):
        configure_worker("gw0", environ)
    assert environ == {}


def test_importing_the_module_does_not_import_jax() -> None:
    code = "import sys, cnnbench.devices; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


WORKER_PROBE = """
import json, os

def pytest_collection_finish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    keys = ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION")
    with open(f"env-{worker}.json", "w") as f:
        json.dump({k: os.environ.get(k) for k in keys}, f)
"""


def test_the_plugin_gives_each_xdist_worker_its_own_gpu(
    pytester: pytest.Pytester, tiny_suite_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = pytester.path / "bin"
    bin_dir.mkdir()
    _fake_nvidia_smi(bin_dir, "GPU 0: NVIDIA H200 (UUID: GPU-aa)\\nGPU 1: NVIDIA H200 (UUID: GPU-bb)\\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    for name in ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                 "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    (pytester.path / "tiny.toml").write_text(tiny_suite_text)
    pytester.makeconftest(WORKER_PROBE)
    # -k deselects every scenario: the workers start, configure and collect, and nothing trains
    result = pytester.runpytest_subprocess("--cnnbench", "--cnnbench-suite=tiny.toml", "-n", "2", "-k", "nothing",
                                           timeout=300)  # fmt: skip
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout.str() + result.stderr.str()
    seen = {p.stem[4:]: json.loads(p.read_text()) for p in pytester.path.glob("env-gw*.json")}
    assert seen == {
        "gw0": {"CUDA_VISIBLE_DEVICES": "0", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                "XLA_PYTHON_CLIENT_MEM_FRACTION": None},
        "gw1": {"CUDA_VISIBLE_DEVICES": "1", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                "XLA_PYTHON_CLIENT_MEM_FRACTION": None},
    }  # fmt: skip
