"""The floors pyproject.toml declares are the versions the matrix's ``oldest`` session runs.

A floor raised or lowered in one place and not the other would declare versions nobody
ran the suite on (issue 15).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (CI's interpreter)

ROOT = Path(__file__).resolve().parents[2]


def _oldest() -> dict[str, Version]:
    """noxfile.OLDEST, read without importing nox."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "OLDEST":
            pins = ast.literal_eval(node.value)
            break
    else:
        raise AssertionError("noxfile.py has no OLDEST list")
    found = {}
    for pin in pins:
        name, version = pin.split("==")
        found[canonicalize_name(name)] = Version(version)
    return found


def _floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        # The test extra's tools (pytest, ruff, ...) are not what users install.
        requirements += [r for r in items if extra != "test" or r.startswith("opentelemetry-")]
    floors: dict[str, Version] = {}
    for text in requirements:
        requirement = Requirement(text)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                floors[canonicalize_name(requirement.name)] = Version(spec.version)
    return floors


def test_every_declared_floor_is_pinned_by_the_oldest_session():
    oldest = _oldest()
    floors = _floors()
    assert floors, "no floors found in pyproject.toml"
    wrong = {
        name: (str(floor), str(oldest.get(name)))
        for name, floor in floors.items()
        if oldest.get(name) != floor
    }
    assert not wrong, f"pyproject floor vs noxfile OLDEST: {wrong}"
