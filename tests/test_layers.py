"""The layers' promise at run time: the config, results and report layers load without JAX, so validating a suite,
gating a report or comparing two runs never pays for it (`lint-imports` checks the same statically in CI)."""

from __future__ import annotations

import json
import subprocess
import sys

LIGHT = ("cnnbench.config", "cnnbench.results", "cnnbench.report")
HEAVY = ("jax", "jaxlib", "flax", "optax", "orbax")

PROBE = f"""
import importlib, json, pkgutil, sys
loaded = []
for package in {LIGHT!r}:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
        loaded.append(info.name)
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"loaded": loaded, "heavy": heavy}}))
"""


def test_config_results_and_report_import_without_jax() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    probe = json.loads(done.stdout)
    assert {"cnnbench.config.suite", "cnnbench.results.gate", "cnnbench.report.html"} <= set(probe["loaded"])
    assert probe["heavy"] == []
