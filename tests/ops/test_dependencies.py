"""Dependencies that hold (issue 28): the lock the image installs from stays within
pyproject.toml's bounds, the constraints file CI installs sits exactly on the lower bounds,
the libraries whose internals miniscan reads have an upper bound, and the licence is there.
(That the lower bounds work is `make test-lowest`, a step of .ci/run.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
# The libraries whose private parts miniscan uses (the Pub/Sub transport class, histogram
# internals): an unpinned major or minor release could break a running deployment.
NEEDS_UPPER_BOUND = {"google-cloud-pubsub", "prometheus-client"}


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r)
        for r in project["dependencies"] + project["optional-dependencies"]["postgres"]
    ]


def pins(name: str) -> dict[str, Version]:
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, version = line.split("==")
            found[canonicalize_name(package)] = Version(version)
    return found


def test_the_lock_pins_every_runtime_dependency_within_its_bounds() -> None:
    locked = pins("requirements.lock")
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(locked[name]), (name, str(locked[name]))


def test_the_constraints_sit_on_the_lower_bounds() -> None:
    lowest = pins("constraints/lowest.txt")
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert floors, f"{name} has no lower bound"
        assert lowest.get(name) is not None, f"{name} is not in constraints/lowest.txt"
        assert lowest[name].release[: len(floors[0].release)] == floors[0].release, name


def test_libraries_whose_internals_are_used_have_an_upper_bound() -> None:
    for requirement in runtime_requirements():
        if canonicalize_name(requirement.name) in NEEDS_UPPER_BOUND:
            assert any(s.operator == "<" for s in requirement.specifier), requirement


def test_the_image_installs_from_the_lock_and_the_licence_is_apache() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-r requirements.lock" in dockerfile and "--no-deps" in dockerfile
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text()
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
