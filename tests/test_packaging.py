"""The dependency floors .ci/run tests are pyproject.toml's: every declared dependency's lowest allowed version has
its line in .ci/min-versions.txt, at that version, so raising a floor in one place and not the other fails here."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parent.parent


def floors(requirements: list[str]) -> dict[str, Version]:
    """Each requirement's lowest allowed version (its ``>=`` or ``==`` bound), by lower-cased name; cnnbench's own
    extras (``cnnbench[test-tools,weights]``) are not floors."""
    out = {}
    for text in requirements:
        req = Requirement(text)
        if req.name == "cnnbench":
            continue
        (bound,) = [s for s in req.specifier if s.operator in (">=", "==")]
        out[req.name.lower()] = Version(bound.version)
    return out


def test_every_declared_floor_is_the_version_ci_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = floors(project["dependencies"]) | floors(extras["test-tools"]) | floors(extras["weights"])
    lines = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "min-versions.txt").read_text().splitlines()]
    assert all("==" in line for line in lines if line)  # each a pin
    assert floors([line for line in lines if line]) == declared
    assert extras["test"] == ["cnnbench[test-tools,weights]"]  # the README's install: the tools and the weights
    assert "-c .ci/min-versions.txt -e '.[test-tools]'" in (ROOT / ".ci" / "run").read_text()
