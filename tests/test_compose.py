"""docker-compose.yml, Dockerfile and .dockerignore: what `docker-compose config` checks, and
what it cannot.

`docker-compose config -q` validates the file's schema. These tests add: images are
well-formed and pinned, build contexts and mounted host paths exist, each command line is
accepted by the real click command it runs, the processor's metrics port and service name
match what Prometheus scrapes, the processor can be scaled, each replica claims its own
SQLite file, Grafana loads the provisioned dashboard as its home page, and the image is built
from a context that holds what `pip install .` needs and nothing else.

Needs docker-compose (Debian package) for the config check; skips it without, unless
MINISCAN_REQUIRE_EMULATOR=1. No Docker daemon is needed.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import time
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import click
from ops_support import (
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    PROMETHEUS_CONFIG,
    REPO,
    load_yaml,
    require_tool,
)

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"
SERVICES = {"pubsub", "init", "scanner", "processor", "prometheus", "grafana"}
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


# --- what docker-compose itself checks ---------------------------------------------------


def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        [require_tool("docker-compose"), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# --- what it cannot -----------------------------------------------------------------------


def test_the_stack_has_every_service():
    assert set(compose()["services"]) == SERVICES


def test_images_are_well_formed_and_pinned_and_build_contexts_exist():
    for name, spec in compose()["services"].items():
        image = spec.get("image")
        assert image and IMAGE_REF.match(image), f"{name}: malformed image {image!r}"
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{name}: pin a tag instead of {image!r}"
        if "build" in spec:
            context = REPO / spec["build"]["context"]
            assert context.is_dir(), f"{name}: no build context {context}"
            assert (context / spec["build"].get("dockerfile", "Dockerfile")).is_file()


def test_mounted_host_paths_exist_or_are_ignored_runtime_state():
    for name, spec in compose()["services"].items():
        for host, target, read_only in bind_mounts(spec):
            relative = host.relative_to(REPO)  # raises for a path outside the repo
            if read_only:
                assert host.exists(), f"{name}: {relative} (mounted at {target}) is missing"
            else:
                # A folder written at run time (the database): must not end up in git.
                ignored = subprocess.run(
                    ["git", "check-ignore", "-q", f"{relative}/"], cwd=REPO, timeout=30
                )
                assert ignored.returncode == 0, f"{name}: {relative} is writable but not ignored"


def test_named_volumes_are_declared():
    declared = set(compose().get("volumes") or {})
    for name, spec in compose()["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_commands_are_console_scripts_of_the_package():
    scripts = set(tomllib.loads(PYPROJECT.read_text())["project"]["scripts"])
    for name in ("init", "scanner"):
        assert service(name)["command"][0] in scripts, name
    assert "miniscan-supervisor" in scripts
    assert "miniscan-supervisor" in service("processor")["command"]


def test_processor_command_line_is_accepted_by_the_supervisor_cli():
    from supervisor.cli import main

    args = arguments_after(service("processor")["command"], "miniscan-supervisor")
    # The slot script appends --db (see test_each_processor_replica_claims_its_own_db_file).
    context = main.make_context("miniscan-supervisor", [*args, "--db", "/app/data/x.db"])
    assert context.params["workers"] == 8


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


def test_processor_can_be_scaled():
    processor = service("processor")
    assert "container_name" not in processor
    for port in processor.get("ports", []):
        assert ":" not in str(port), f"host port {port} would collide between replicas"


def test_each_processor_replica_claims_its_own_db_file(tmp_path):
    """Runs the processor's slot-claiming script with a stand-in for the supervisor."""
    command = service("processor")["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace("$$", "$").replace("/app/data", str(tmp_path))
    # The stand-in writes the arguments it got to a file, then holds its lock until stdin ends.
    stand_in = 'printf "%s\\n" "$@" > "$0.args"; read _'

    def start_replica(name: str) -> subprocess.Popen:
        return subprocess.Popen(
            ["sh", "-c", script, "claim", "sh", "-c", stand_in, str(tmp_path / name)],
            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def claimed_db(name: str) -> str:
        args_file = tmp_path / f"{name}.args"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if args_file.exists() and args_file.read_text().count("\n") >= 2:
                return option_value(args_file.read_text().split(), "--db")
            time.sleep(0.05)
        raise AssertionError(f"replica {name} did not start its supervisor within 15 s")

    replicas = {}
    try:
        for name in ("a", "b", "c"):
            replicas[name] = start_replica(name)
            claimed_db(name)  # one at a time, so the slots are claimed in order
        assert [Path(claimed_db(name)).name for name in "abc"] == [
            "scan_results.db", "scan_results-2.db", "scan_results-3.db",
        ]  # fmt: skip
        replicas["a"].communicate(b"\n", timeout=10)  # replica a stops: its slot is free
        replicas["d"] = start_replica("d")
        assert Path(claimed_db("d")).name == "scan_results.db"
    finally:
        for process in replicas.values():
            if process.poll() is None:
                process.communicate(b"\n", timeout=10)


def test_depends_on_conditions_are_satisfiable():
    services = compose()["services"]
    conditions = {}
    for name, spec in services.items():
        for dependency, rule in (spec.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            conditions[(name, dependency)] = rule["condition"]
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            if rule["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", dependency
    assert conditions[("init", "pubsub")] == "service_healthy"
    assert conditions[("scanner", "init")] == "service_completed_successfully"
    assert conditions[("processor", "init")] == "service_completed_successfully"


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
    assert any(kind == "RUN" and "pip install ." in arg for kind, arg in instructions)
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
