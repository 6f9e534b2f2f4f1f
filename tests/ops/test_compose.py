"""docker-compose.yml, docker-compose.scale.yml, Dockerfile and .dockerignore: what
`docker-compose config` checks, and what it cannot.

`docker-compose config -q` validates the schema of the plain stack and of the scaled one (the
override file on top). These tests add: images are well-formed and pinned, build contexts and
mounted host paths exist, each command line is accepted by the real click command it runs,
the processor's metrics port and service name match what Prometheus scrapes, `data-init`
makes ./data writable for the processor's non-root user (its script is run here against a
temporary folder), the plain stack keeps one processor on SQLite while the scaled one points
every replica at a healthchecked PostgreSQL, Grafana loads the provisioned dashboard as its
home page, and the image is built from a context that holds what `pip install` needs and
nothing else.

Needs docker-compose (Debian package) for the config checks and for the scaled stack as
docker-compose merges it; skips them without, unless MINISCAN_REQUIRE_EMULATOR=1. No Docker
daemon is needed.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import subprocess
import tempfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
from ops_support import (
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    PROMETHEUS_CONFIG,
    REPO,
    load_yaml,
    require_tool,
)

from supervisor.settings import SupervisorSettings

COMPOSE_FILE = REPO / "docker-compose.yml"
SCALE_FILE = REPO / "docker-compose.scale.yml"
SCALE_COMMAND = (
    "docker compose -f docker-compose.yml -f docker-compose.scale.yml up --scale processor=3"
)
README = REPO / "README.md"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"
SERVICES = {"pubsub", "init", "data-init", "scanner", "processor", "prometheus", "grafana"}
STACKS = {"plain": (COMPOSE_FILE,), "scaled": (COMPOSE_FILE, SCALE_FILE)}
# name[:tag][@digest], optionally behind a registry host: the grammar of docker/distribution.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(
    rf"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def compose_files() -> list[dict[str, Any]]:
    """Each compose file as written (the override holds only what it changes)."""
    return [load_yaml(path) for path in (COMPOSE_FILE, SCALE_FILE)]


def docker_compose(
    files: tuple[Path, ...], *args: str, grafana_password: str | None = "test-password"
) -> subprocess.CompletedProcess[str]:
    # Without the caller's own settings, so that the defaults in the files are what is tested.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINISCAN_", "COMPOSE_"))}
    env.pop("GRAFANA_ADMIN_PASSWORD", None)
    if grafana_password is not None:
        env["GRAFANA_ADMIN_PASSWORD"] = grafana_password
    options = [arg for path in files for arg in ("-f", str(path))]
    return subprocess.run(
        [require_tool("docker-compose"), *options, *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )  # fmt: skip


@functools.cache
def _resolved_text(stack: str) -> str:
    result = docker_compose(STACKS[stack], "config")
    assert result.returncode == 0, result.stderr
    return result.stdout


def resolved(stack: str) -> dict[str, Any]:
    """The stack as docker-compose merges and interpolates it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resolved.yml"
        path.write_text(_resolved_text(stack))
        return load_yaml(path)


def bind_mounts(spec: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """(host path, container path, read-only) for each bind mount of a service."""
    mounts = []
    for volume in spec.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source.startswith((".", "/")):
            mounts.append(((REPO / source).resolve(), target, mode == ["ro"]))
    return mounts


def host_path(spec: dict[str, Any], container_path: str) -> Path:
    """Where a path inside a service's container comes from in the repo (via a bind mount)."""
    for host, target, _ in bind_mounts(spec):
        inside = PurePosixPath(container_path)
        if inside.is_relative_to(target):
            return host / inside.relative_to(target)
    raise AssertionError(f"{container_path} is not bind-mounted from the repo")


def arguments_after(command: list[str], program: str) -> list[str]:
    assert program in command, f"{program} not in {command}"
    return command[command.index(program) + 1 :]


def option_value(args: list[str], option: str) -> str:
    for index, arg in enumerate(args):
        if arg == option:
            return args[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{option} not in {args}")


def environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


IMAGE_DATA_FOLDER = "/app/data"


def supervisor_settings(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> SupervisorSettings:
    """What `miniscan-supervisor` makes of a processor's command line and environment."""
    from supervisor.cli import main, settings_from_options

    for key in [key for key in os.environ if key.startswith("MINISCAN_")]:
        monkeypatch.delenv(key)
    for key, value in environment(spec).items():
        monkeypatch.setenv(key, value)
    # --db must name a file in an existing folder (issue 28): inside the container the
    # image's /app/data exists (the Dockerfile creates it, compose mounts ./data on it).
    assert f"mkdir -p {IMAGE_DATA_FOLDER}" in DOCKERFILE.read_text()
    isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda path: path == IMAGE_DATA_FOLDER or isdir(path))
    args = arguments_after(spec["command"], "miniscan-supervisor")
    return settings_from_options(main.make_context("miniscan-supervisor", args).params)


def without_db(command: list[str]) -> list[str]:
    index = command.index("--db")
    return command[:index] + command[index + 2 :]


# --- what docker-compose itself checks ---------------------------------------------------


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_docker_compose_accepts_the_stack(stack):
    result = docker_compose(STACKS[stack], "config", "-q")
    assert result.returncode == 0, result.stderr


# --- what it cannot -----------------------------------------------------------------------


def test_the_stack_has_every_service():
    assert set(compose()["services"]) == SERVICES
    assert set(resolved("scaled")["services"]) == SERVICES | {"postgres"}


def test_images_are_well_formed_and_pinned_and_build_contexts_exist():
    for spec_file in compose_files():
        for name, spec in spec_file["services"].items():
            if name == "processor" and "image" not in spec:
                continue  # the override's processor keeps docker-compose.yml's image
            image = spec.get("image")
            assert image and IMAGE_REF.match(image), f"{name}: malformed image {image!r}"
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: pin a tag instead of {image!r}"
            if "build" in spec:
                context = REPO / spec["build"]["context"]
                assert context.is_dir(), f"{name}: no build context {context}"
                assert (context / spec["build"].get("dockerfile", "Dockerfile")).is_file()


def test_mounted_host_paths_exist_or_are_ignored_runtime_state():
    for spec_file in compose_files():
        for name, spec in spec_file["services"].items():
            for host, target, read_only in bind_mounts(spec):
                relative = host.relative_to(REPO)  # raises for a path outside the repo
                if read_only:
                    assert host.exists(), f"{name}: {relative} (mounted at {target}) is missing"
                else:
                    # A folder written at run time (the database): must not end up in git.
                    ignored = subprocess.run(
                        ["git", "check-ignore", "-q", f"{relative}/"], cwd=REPO, timeout=30
                    )
                    assert ignored.returncode == 0, f"{name}: {relative} is writable, not ignored"


def test_named_volumes_are_declared():
    for spec_file in compose_files():
        declared = set(spec_file.get("volumes") or {})
        for name, spec in spec_file["services"].items():
            for volume in spec.get("volumes", []):
                source = volume.split(":")[0]
                if not source.startswith((".", "/")):
                    assert source in declared, f"{name}: volume {source} is not declared"


def test_commands_are_console_scripts_of_the_package():
    scripts = set(tomllib.loads(PYPROJECT.read_text())["project"]["scripts"])
    for name in ("init", "scanner"):
        assert service(name)["command"][0] in scripts, name
    assert service("processor")["command"][0] == "miniscan-supervisor" in scripts


def test_processor_command_line_is_accepted_by_the_supervisor_cli(monkeypatch):
    processor = service("processor")
    settings = supervisor_settings(processor, monkeypatch)
    assert settings.workers == 8
    assert settings.writer.db_path == "/app/data/scan_results.db"
    # `docker compose exec processor miniscan stats` reads the same store.
    assert environment(processor)["MINISCAN_DB"] == settings.writer.db_path


def test_scanner_command_line_is_accepted_by_the_scanner_cli():
    from scanner.cli import main

    command = service("scanner")["command"]
    context = main.make_context(command[0], command[1:])
    assert (context.params["topic"], context.params["count"]) == ("scan-topic", 0)


def test_init_command_line_is_accepted_by_the_miniscan_group():
    from commands.miniscan import main

    program, subcommand, *args = service("init")["command"]
    group_context = click.Context(main, info_name=program)
    setup = main.get_command(group_context, subcommand)
    assert setup is not None, f"`{program} {subcommand}` does not exist"
    context = setup.make_context(subcommand, args, parent=group_context)
    assert (context.params["topic"], context.params["subscription"]) == ("scan-topic", "scan-sub")


def test_init_creates_what_scanner_and_processor_use():
    init_args = service("init")["command"]
    scanner_args = service("scanner")["command"]
    processor_args = arguments_after(service("processor")["command"], "miniscan-supervisor")
    assert option_value(init_args, "--topic") == option_value(scanner_args, "--topic")
    assert option_value(init_args, "--subscription") == option_value(
        processor_args, "--subscription"
    )
    projects = {
        option_value(args, "--project") for args in (init_args, scanner_args, processor_args)
    }
    pubsub_command = " ".join(service("pubsub")["command"])
    assert projects == {"test-project"} and "--project=test-project" in pubsub_command


def test_prometheus_scrapes_the_processor_service_on_its_metrics_port():
    processor = service("processor")
    args = arguments_after(processor["command"], "miniscan-supervisor")
    metrics_port = int(option_value(args, "--metrics-port"))
    assert option_value(args, "--metrics-host") == "0.0.0.0"  # reachable from prometheus
    assert [int(port) for port in processor["expose"]] == [metrics_port]
    assert f"127.0.0.1:{metrics_port}/readyz" in " ".join(processor["healthcheck"]["test"])

    (job,) = load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["processor"] and discovery["port"] == metrics_port
    assert discovery["type"] == "A"  # one record per replica


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_processor_can_be_scaled(stack):
    processor = resolved(stack)["services"]["processor"]
    assert "container_name" not in processor
    for port in processor.get("ports", []):
        assert ":" not in str(port), f"host port {port} would collide between replicas"


def test_depends_on_conditions_are_satisfiable():
    for stack in sorted(STACKS):
        services = resolved(stack)["services"]
        for name, spec in services.items():
            for dependency, rule in (spec.get("depends_on") or {}).items():
                assert dependency in services, f"{stack}: {name} depends on unknown {dependency}"
                if rule["condition"] == "service_healthy":
                    assert "healthcheck" in services[dependency], f"{dependency}: no healthcheck"
                if rule["condition"] == "service_completed_successfully":
                    assert services[dependency].get("restart", "no") == "no", dependency
    conditions = {
        (name, dependency): rule["condition"]
        for name, spec in compose()["services"].items()
        for dependency, rule in (spec.get("depends_on") or {}).items()
    }
    assert conditions[("init", "pubsub")] == "service_healthy"
    assert conditions[("scanner", "init")] == "service_completed_successfully"
    assert conditions[("processor", "init")] == "service_completed_successfully"
    assert conditions[("processor", "data-init")] == "service_completed_successfully"


def test_services_reach_the_emulator_by_its_service_name():
    port = option_value(service("pubsub")["command"], "--host-port").rsplit(":", 1)[1]
    for name in ("init", "scanner", "processor"):
        assert environment(service(name))["PUBSUB_EMULATOR_HOST"] == f"pubsub:{port}", name


def test_prometheus_loads_the_repo_config():
    prometheus = service("prometheus")
    config = option_value(prometheus["command"], "--config.file")
    assert host_path(prometheus, config) == PROMETHEUS_CONFIG


def test_grafana_provisions_the_dashboard_as_an_anonymous_home_page():
    grafana = service("grafana")
    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert host_path(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]) == DASHBOARD

    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert host_path(grafana, provider["options"]["path"]) == DASHBOARD.parent
    provisioning = "/etc/grafana/provisioning"
    assert host_path(grafana, f"{provisioning}/dashboards") == DASHBOARD_PROVIDERS.parent
    assert host_path(grafana, f"{provisioning}/datasources") == DATASOURCES.parent

    (datasource,) = load_yaml(DATASOURCES)["datasources"]
    assert datasource["url"] == "http://prometheus:9090"  # the service name, Prometheus' port
    assert "prometheus" in compose()["services"]


# --- ./data: ready on a fresh clone, written by a non-root processor (issue 15) ------------


def image_uid() -> str:
    """The uid the Dockerfile gives the image's user (`useradd --uid N`)."""
    (uid,) = re.findall(r"useradd\b[^\n]*--uid (\d+)", DOCKERFILE.read_text())
    return uid


def run_data_init(data_dir: Path, owner: str) -> subprocess.CompletedProcess[str]:
    """data-init's command with its two arguments replaced: a temporary folder, an owner."""
    command = service("data-init")["command"]
    assert command[:2] == ["sh", "-c"] and len(command) == 6, command
    script, name = command[2].replace("$$", "$"), command[3]
    return subprocess.run(
        ["sh", "-c", script, name, str(data_dir), owner],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_data_init_prepares_the_folder_the_processor_writes():
    init, processor = service("data-init"), service("processor")
    data_dir, owner = service("data-init")["command"][4:]
    uid = image_uid()
    assert owner == f"{uid}:{uid}"  # --user-group: the group has the user's id
    assert processor["user"] == owner and uid != "0"  # never root
    assert init["user"] in {"0", "0:0", "root"} and init.get("restart") == "no"
    # Both see the same host folder at the same place, and the database lives in it.
    assert host_path(init, data_dir) == host_path(processor, data_dir) == REPO / "data"
    database = option_value(processor["command"], "--db")
    assert PurePosixPath(database).is_relative_to(data_dir)
    assert processor["depends_on"]["data-init"]["condition"] == "service_completed_successfully"
    root_services = [
        name for name, spec in compose()["services"].items() if spec.get("user") in {"0", "0:0"}
    ]
    assert root_services == ["data-init"]


def test_data_init_creates_the_folder_and_hands_it_to_the_processor_user(tmp_path):
    # As root (CI, containers) the real owner; otherwise our own uid, the only one we may give.
    uid = int(image_uid()) if os.geteuid() == 0 else os.geteuid()
    gid = uid if os.geteuid() == 0 else os.getegid()
    data_dir = tmp_path / "clone" / "data"  # a fresh clone: no ./data yet
    data_dir.parent.mkdir()
    result = run_data_init(data_dir, f"{uid}:{gid}")
    assert result.returncode == 0, result.stderr
    assert (data_dir.stat().st_uid, data_dir.stat().st_gid) == (uid, gid)

    # Again, with what an earlier run (or `make run` as another user) left behind.
    left_behind = data_dir / "scan_results.db"
    left_behind.write_bytes(b"")
    if os.geteuid() == 0:
        os.chown(data_dir, 0, 0)
        os.chown(left_behind, 0, 0)
    result = run_data_init(data_dir, f"{uid}:{gid}")
    assert result.returncode == 0, result.stderr
    for path in (data_dir, left_behind):
        assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid), path


def test_data_init_warns_but_goes_on_where_chown_is_refused(tmp_path):
    result = run_data_init(tmp_path / "data", "no-such-user-miniscan")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data").is_dir()
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("data-init:")]
    assert "cannot chown" in line


def test_data_init_fails_when_it_cannot_create_the_folder(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the folder should be")
    result = run_data_init(blocker / "inner", "0:0")
    assert result.returncode != 0


# --- one processor on SQLite, or many on PostgreSQL (issue 14) ----------------------------


def test_the_plain_stack_has_one_sqlite_writer_and_no_postgres():
    from store.backend import is_postgres_url

    assert "postgres" not in compose()["services"]
    assert not is_postgres_url(option_value(service("processor")["command"], "--db"))
    assert "deploy" not in service("processor") and "scale" not in service("processor")


def test_the_flock_slots_are_gone():
    for path in (COMPOSE_FILE, SCALE_FILE):
        text = path.read_text()
        assert "flock" not in text and "slot" not in text, path.name
    # No wrapper script around the supervisor any more: compose runs it directly.
    assert service("processor")["command"][0] == "miniscan-supervisor"


def test_the_scale_file_adds_a_healthchecked_postgres_on_a_named_volume():
    postgres = resolved("scaled")["services"]["postgres"]
    assert postgres["image"].split(":")[0] == "postgres"  # the official image
    test = postgres["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "pg_isready", test
    env = environment(postgres)
    assert f"--username={env['POSTGRES_USER']}" in test and f"--dbname={env['POSTGRES_DB']}" in test
    (volume,) = postgres["volumes"]
    volume_source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
    volume_target = volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
    assert volume_target == "/var/lib/postgresql/data"
    assert volume_source in load_yaml(SCALE_FILE)["volumes"]
    assert "ports" not in postgres  # reached by the processors only, not from the host


def test_the_scaled_processors_share_that_postgres(monkeypatch):
    from store.backend import is_postgres_url

    services = resolved("scaled")["services"]
    processor, postgres = services["processor"], services["postgres"]
    database = environment(processor)["MINISCAN_DB"]
    # The URL holds the password: never on the command line, where `ps` shows it.
    assert is_postgres_url(database) and "--db" not in processor["command"]
    url, env = urlsplit(database), environment(postgres)
    assert (url.hostname, url.port) == ("postgres", 5432)  # the service name, its port
    assert (url.username, url.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert url.path == f"/{env['POSTGRES_DB']}"
    assert processor["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert supervisor_settings(processor, monkeypatch).writer.db_path == database
    # Everything else is the plain stack's processor: only the store changes.
    assert processor["command"] == without_db(service("processor")["command"])
    assert processor["user"] == service("processor")["user"]


def test_the_image_can_reach_postgres():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("psycopg") for requirement in extras["postgres"])
    installs = [arg for kind, arg in dockerfile_instructions() if kind == "RUN" and "pip" in arg]
    assert any(re.search(r"pip install ['\"]?\.\[postgres\]", arg) for arg in installs), installs


def test_the_scale_command_is_documented_where_a_user_looks():
    header = COMPOSE_FILE.read_text().split("\nx-miniscan-image", 1)[0]
    assert SCALE_COMMAND in header
    assert "--scale processor=3" in header and "refuses a second writer" in header
    assert SCALE_COMMAND in SCALE_FILE.read_text()
    assert SCALE_COMMAND in README.read_text()


# --- the image -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_image_installs_the_project_and_runs_the_supervisor_as_non_root():
    instructions = dockerfile_instructions()
    assert any(
        kind == "RUN" and re.search(r"pip install ['\"]?\.(\[|['\"]?$)", arg)
        for kind, arg in instructions
    )
    final_stage = instructions[
        max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM") :
    ]
    assert final_stage[0][1].startswith("python:3.11-slim")
    users = [arg for kind, arg in final_stage if kind == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"
    assert [arg for kind, arg in final_stage if kind == "CMD"][-1] == '["miniscan-supervisor"]'


def dockerignore_excludes(path: str, ignore_file: Path = DOCKERIGNORE) -> bool:
    """Whether Docker leaves `path` out of the build context (last matching pattern wins)."""
    excluded = False
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in ignore_file.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            candidates = ["/".join(parts[i : j + 1]) for i in range(len(parts)) for j in
                          range(i, len(parts))]  # fmt: skip
            pattern = pattern[3:]
        else:
            candidates = prefixes
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            excluded = not negated
    return excluded


def test_build_context_holds_what_pip_install_needs_and_no_data_venvs_or_caches():
    copied = [
        arg.split()[0]
        for kind, arg in dockerfile_instructions()
        if kind == "COPY" and not arg.startswith("--from")
    ]
    packages = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in packages["include"]:
        assert f"{package.rstrip('*')}/" in copied, f"Dockerfile does not COPY {package}"
    for source in copied:
        for path in [source, *(str(p.relative_to(REPO)) for p in (REPO / source).rglob("*.py"))]:
            if "__pycache__" not in path:
                assert not dockerignore_excludes(path), f".dockerignore drops {path}"
    for unwanted in (
        "data/scan_results.db", ".venv/bin/python", ".git/HEAD", "tests/test_compose.py",
        "supervisor/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v", "x.db",
    ):  # fmt: skip
        assert dockerignore_excludes(unwanted), f".dockerignore lets {unwanted} in"


def test_dockerignore_reader_itself(tmp_path):
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("*\n!src/\n**/__pycache__\n# comment\n")
    assert dockerignore_excludes("data/x.db", ignore)
    assert not dockerignore_excludes("src/a.py", ignore)
    assert not dockerignore_excludes("src/deep/b.py", ignore)
    assert dockerignore_excludes("src/__pycache__/a.pyc", ignore)
    ignore.write_text("data\n")
    assert dockerignore_excludes("data/x.db", ignore)
    assert not dockerignore_excludes("src/data.py", ignore)


# --- limits, stop grace and what is published (issue 27) -----------------------------------

LONG_RUNNING = {"pubsub", "scanner", "processor", "prometheus", "grafana", "postgres"}


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, duration
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def mebibytes(size: str) -> float:
    match = re.fullmatch(r"(\d+)([kmg])b?", str(size).lower())
    assert match, size
    return int(match[1]) * {"k": 1 / 1024, "m": 1, "g": 1024}[match[2]]


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_every_long_running_service_has_cpu_and_memory_limits(stack):
    services = resolved(stack)["services"]
    for name in LONG_RUNNING & set(services):
        spec = services[name]
        assert float(spec.get("cpus", 0)) > 0, f"{name} has no CPU limit"
        assert spec.get("mem_limit"), f"{name} has no memory limit"


def test_the_processor_limits_fit_its_settings_and_the_benchmark(monkeypatch):
    from supervisor.memory_fit import MIB, fit_to_memory
    processor = service("processor")
    limit_mib = mebibytes(processor["mem_limit"])
    settings = SupervisorSettings(workers=supervisor_settings(processor, monkeypatch).workers)
    # Fits without lowering the default in-flight budget, and over the benchmark's ~570 MiB
    # of summed RSS for --workers 8 (bench/RESULTS.md).
    assert fit_to_memory(settings, int(limit_mib * MIB)) is settings
    assert limit_mib >= 570
    assert float(processor["cpus"]) == 2.0  # CPU-bound at 2 cores in the benchmark


def test_docker_kills_the_processor_only_after_its_own_shutdown_and_kill_grace(monkeypatch):
    from supervisor.stopping import KILL_GRACE_S

    processor = service("processor")
    shutdown_s = supervisor_settings(processor, monkeypatch).shutdown_timeout_s
    assert seconds(processor["stop_grace_period"]) > shutdown_s + KILL_GRACE_S


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_prometheus_and_grafana_are_published_on_localhost_only(stack):
    services = resolved(stack)["services"]
    for name in ("prometheus", "grafana"):
        for port in services[name]["ports"]:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port}"
    published = {name for name, spec in services.items() if spec.get("ports")}
    assert published == {"prometheus", "grafana"}


def test_grafana_has_no_default_admin_password():
    result = docker_compose(STACKS["plain"], "config", "-q", grafana_password=None)
    assert result.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in result.stderr
    grafana = resolved("plain")["services"]["grafana"]
    assert environment(grafana)["GF_SECURITY_ADMIN_PASSWORD"] == "test-password"
