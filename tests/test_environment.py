"""The environment record (SPEC §8): device memory and where that figure came from, and the precision, which joins
the fingerprint without changing the fingerprint of an fp32 run (so committed baselines stay comparable)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import pytest

from cnnbench.engine.environment import collect_environment, fingerprint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def outside_a_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("outside_a_repo")
def test_on_cpu_the_device_memory_is_the_hosts() -> None:
    env = collect_environment("abc123")
    assert env["backend"] == "cpu" and env["precision"] == "fp32"
    assert env["device_memory_source"] == "host"
    assert env["device_memory_bytes"] == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") > 2**30


class _Device:
    def __init__(self, stats: dict[str, Any] | None) -> None:
        self.stats = stats

    def memory_stats(self) -> dict[str, Any] | None:
        return self.stats


@pytest.mark.usefixtures("outside_a_repo")
def test_an_accelerator_reports_its_own_memory_and_never_the_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax, "local_devices", lambda: [_Device({"bytes_limit": 150_000_000_000, "bytes_in_use": 0})])
    env = collect_environment("abc123", precision="bf16")
    assert (env["device_memory_bytes"], env["device_memory_source"], env["precision"]) == (150e9, "device", "bf16")
    monkeypatch.setattr(jax, "local_devices", lambda: [_Device(None)])  # a backend that keeps no statistics
    env = collect_environment("abc123")
    assert (env["device_memory_bytes"], env["device_memory_source"]) == (None, None)


BASELINE = json.loads((ROOT / "reports" / "baselines" / "smoke-cpu.json").read_text())["environment"]


def test_precision_is_part_of_the_fingerprint() -> None:
    assert fingerprint(BASELINE | {"precision": "bf16"}) != fingerprint(BASELINE | {"precision": "fp32"})


# The environment of the smoke baseline as saved before reports had a precision key (commit 7ac359d's copy).
OLDER_ENV = {
    "cnnbench": "0.1.0", "jax": "0.10.2", "jaxlib": "0.10.2", "flax": "0.12.8", "optax": "0.2.8", "orbax": "0.12.8",
    "numpy": "2.4.6", "python": "3.11.7", "backend": "cpu", "device_kind": "cpu", "device_count": 1,
    "process_count": 1, "cpu": "AMD EPYC", "os": "Linux-6.18.44-fc-v669-x86_64-with-glibc2.36",
    "git_commit": "20d73b9c278d753522f0f40facf0dd0814d6f109", "git_dirty": True, "suite_hash": "3124781e35040608",
    "hostname": "vm", "fingerprint": "826c0a421fde",
}  # fmt: skip


def test_an_fp32_run_keeps_the_fingerprint_of_reports_older_than_the_precision_key() -> None:
    assert "precision" not in OLDER_ENV
    assert fingerprint(OLDER_ENV) == fingerprint(OLDER_ENV | {"precision": "fp32"}) == OLDER_ENV["fingerprint"]
    # the committed baseline, re-saved with the key, still matches a CI run of the same machine and software
    assert BASELINE["precision"] == "fp32" and fingerprint(BASELINE) == OLDER_ENV["fingerprint"]


@pytest.mark.usefixtures("outside_a_repo")
def test_the_record_hashes_to_its_own_fingerprint_at_either_precision() -> None:
    fp32, bf16 = collect_environment("abc123"), collect_environment("abc123", "bf16")
    assert fp32["fingerprint"] == fingerprint(fp32) and bf16["fingerprint"] == fingerprint(bf16)
    assert fp32["fingerprint"] != bf16["fingerprint"]
    assert {k: v for k, v in fp32.items() if k not in ("precision", "fingerprint")} == {
        k: v for k, v in bf16.items() if k not in ("precision", "fingerprint")
    }
