"""deploy/kubernetes: every overlay renders (`kubectl kustomize`, no cluster), every core
object passes `kubernetes-validate` in strict mode, and the objects no published schema
package covers (KEDA's ScaledObject and TriggerAuthentication, the Prometheus operator's
ServiceMonitor) are checked field by field. The probes' paths, the ports and the environment
variables are held equal to what the supervisor really serves and reads: its HTTP server
answers the probes' paths, and its command line parses the pods' environment.

Needs kubectl (Debian: kubernetes-client) for its built-in kustomize; skips without, unless
MINISCAN_REQUIRE_EMULATOR=1. No cluster is needed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from typing import Any

import kubernetes_validate
import pytest
import yaml
from ops_support import REPO, require_tool

DEPLOY = REPO / "deploy" / "kubernetes"
OVERLAYS = ("postgres", "postgres-without-keda", "sqlite")
KUBERNETES_VERSION = "1.31.0"  # the oldest GKE minor still in standard support
# Objects of custom resources: no schema ships with kubernetes-validate.
CUSTOM_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
KINDS = {
    "postgres": {"ServiceAccount", "ConfigMap", "Service", "ServiceMonitor", "Deployment",
                 "PodDisruptionBudget", "ScaledObject", "TriggerAuthentication"},
    "postgres-without-keda": {"ServiceAccount", "ConfigMap", "Service", "ServiceMonitor",
                              "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler"},
    "sqlite": {"ServiceAccount", "ConfigMap", "Service", "ServiceMonitor", "StatefulSet"},
}  # fmt: skip
WORKLOAD = {
    "postgres": "Deployment",
    "postgres-without-keda": "Deployment",
    "sqlite": "StatefulSet",
}


@functools.cache
def _rendered_text(overlay: str) -> str:
    kubectl = require_tool("kubectl", install="apt-get install kubernetes-client")
    result = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(_rendered_text(overlay)) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def container(overlay: str) -> dict[str, Any]:
    (found,) = only(rendered(overlay), WORKLOAD[overlay])["spec"]["template"]["spec"]["containers"]
    return found


def pod_environment(overlay: str) -> dict[str, str]:
    """The container's environment as the pod sees it: the ConfigMap, then its own env."""
    objects = rendered(overlay)
    settings = only(objects, "ConfigMap")
    env = {}
    for source in container(overlay)["envFrom"]:
        assert source["configMapRef"]["name"] == settings["metadata"]["name"]
        env.update(settings["data"])
    for item in container(overlay)["env"]:
        env[item["name"]] = item.get("value", "<from a secret>")
    return env


# --- rendering and schemas ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_the_kinds_it_promises(overlay):
    assert {obj["kind"] for obj in rendered(overlay)} == KINDS[overlay]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_object_passes_strict_validation(overlay):
    for obj in rendered(overlay):
        if obj["apiVersion"].startswith(CUSTOM_GROUPS):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {exc.path}")


def test_strict_validation_refuses_an_unknown_field():
    deployment = json.loads(json.dumps(only(rendered("postgres"), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# --- what the supervisor serves and reads ---------------------------------------------------


@pytest.mark.parametrize("overlay", ["postgres", "sqlite"])
def test_the_pods_environment_is_what_the_supervisor_reads(overlay, monkeypatch):
    from supervisor.cli import main

    known = {
        name
        for param in main.params
        for name in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    env = pod_environment(overlay)
    assert set(env) <= known, f"not read by miniscan-supervisor: {set(env) - known}"
    for key in [key for key in os.environ if key.startswith("MINISCAN_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # --db must name a file in an existing folder: in the pod, the data volume's mount.
    mounted = {mount["mountPath"] for mount in container(overlay).get("volumeMounts", [])}
    isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda path: path in mounted or isdir(path))
    params = main.make_context("miniscan-supervisor", []).params  # parses, or raises
    ports = {port["name"]: port["containerPort"] for port in container(overlay)["ports"]}
    assert ports == {"metrics": params["metrics_port"]}
    assert params["metrics_host"] == "0.0.0.0"  # reachable from the kubelet and Prometheus
    if overlay == "postgres":
        (db,) = [item for item in container(overlay)["env"] if item["name"] == "MINISCAN_DB"]
        assert db["valueFrom"]["secretKeyRef"] == {"name": "miniscan-database", "key": "url"}
    else:
        mounts = {mount["name"]: mount["mountPath"] for mount in container(overlay)["volumeMounts"]}
        assert params["writer__db_path"].startswith(mounts["data"] + "/")


@pytest.fixture
def supervisor_http(tmp_path, monkeypatch):
    """The supervisor's real HTTP server, alive but not ready, on a free port."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    from supervisor.http import start_http_server

    server = start_http_server("127.0.0.1", 0, lambda: (True, "alive"), lambda: (False, "busy"))
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("overlay", ["postgres", "sqlite"])
def test_probes_ask_the_paths_the_supervisor_answers(overlay, supervisor_http):
    spec = container(overlay)
    # Liveness and start-up ask whether the loop turns (200 here); readiness whether it can
    # work (503 here: "busy"); each path reaches the probe it is meant for.
    expected = {"startupProbe": 200, "livenessProbe": 200, "readinessProbe": 503}
    for probe, status in expected.items():
        get = spec[probe]["httpGet"]
        assert get["port"] == "metrics", probe
        assert status_of(supervisor_http + get["path"]) == status, probe
    assert status_of(supervisor_http + "/metrics") == 200  # what the ServiceMonitor scrapes


@pytest.mark.parametrize("overlay", ["postgres", "sqlite"])
def test_kubernetes_kills_only_after_the_supervisors_own_grace(overlay, monkeypatch):
    from supervisor.stopping import KILL_GRACE_S

    pod = only(rendered(overlay), WORKLOAD[overlay])["spec"]["template"]["spec"]
    shutdown_s = float(pod_environment(overlay)["MINISCAN_SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > shutdown_s + KILL_GRACE_S


# --- security, resources, identity ----------------------------------------------------------


@pytest.mark.parametrize("overlay", ["postgres", "sqlite"])
def test_pods_run_non_root_read_only_with_no_capabilities(overlay):
    pod = only(rendered(overlay), WORKLOAD[overlay])["spec"]["template"]["spec"]
    (uid,) = re.findall(r"useradd\b[^\n]*--uid (\d+)", (REPO / "Dockerfile").read_text())
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    security = container(overlay)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    writable = {mount["mountPath"] for mount in container(overlay)["volumeMounts"]}
    assert "/tmp" in writable  # the metrics samples and the forkserver's socket


@pytest.mark.parametrize("overlay", ["postgres", "sqlite"])
def test_resources_are_requested_and_limited_and_fit_the_settings(overlay):
    from supervisor.memory_fit import MIB, fit_to_memory
    from supervisor.settings import SupervisorSettings

    resources = container(overlay)["resources"]
    for side in ("requests", "limits"):
        assert set(resources[side]) == {"cpu", "memory"}, side
    limit = resources["limits"]["memory"]
    assert limit.endswith("Mi")
    settings = SupervisorSettings(workers=int(pod_environment(overlay)["MINISCAN_WORKERS"]))
    # The default in-flight budget fits whole: the limit never shrinks it.
    assert fit_to_memory(settings, int(limit[:-2]) * MIB) is settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_use_the_workload_identity_service_account(overlay):
    objects = rendered(overlay)
    account = only(objects, "ServiceAccount")
    google = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert google.endswith(".iam.gserviceaccount.com")
    pod = only(objects, WORKLOAD[overlay])["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


# --- scaling --------------------------------------------------------------------------------


def test_the_sqlite_processor_is_one_replica_with_a_volume_and_no_autoscaler():
    objects = rendered("sqlite")
    statefulset = only(objects, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 1
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert not {"ScaledObject", "HorizontalPodAutoscaler"} & {obj["kind"] for obj in objects}


def test_both_workloads_run_the_same_container_but_for_the_store():
    def comparable(overlay: str) -> dict[str, Any]:
        spec = json.loads(json.dumps(container(overlay)))
        spec.pop("env")
        spec["volumeMounts"] = [m for m in spec["volumeMounts"] if m["name"] != "data"]
        return spec

    assert comparable("postgres") == comparable("sqlite")


def test_keda_scales_the_deployment_on_backlog_size_and_oldest_unacked_age():
    objects = rendered("postgres")
    scaled = only(objects, "ScaledObject")
    deployment = only(objects, "Deployment")
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], "Deployment", deployment["metadata"]["name"])  # fmt: skip
    triggers = scaled["spec"]["triggers"]
    assert {trigger["type"] for trigger in triggers} == {"gcp-pubsub"}
    modes = {trigger["metadata"]["mode"] for trigger in triggers}
    assert modes == {"SubscriptionSize", "OldestUnackedMessageAge"}
    auth = only(objects, "TriggerAuthentication")
    env = pod_environment("postgres")
    for trigger in triggers:
        assert float(trigger["metadata"]["value"]) > 0
        # KEDA reads the subscription's name from the container: the variable miniscan reads.
        assert trigger["metadata"]["subscriptionNameFromEnv"] == "MINISCAN_SUBSCRIPTION" in env
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"]["podIdentity"]["provider"] == "gcp"
    assert "replicas" in deployment["spec"]  # KEDA then owns it


def test_keda_and_the_cpu_autoscaler_keep_the_same_bounds():
    keda = only(rendered("postgres"), "ScaledObject")["spec"]
    hpa = only(rendered("postgres-without-keda"), "HorizontalPodAutoscaler")["spec"]
    assert 1 <= keda["minReplicaCount"] == hpa["minReplicas"]
    assert keda["minReplicaCount"] < keda["maxReplicaCount"] == hpa["maxReplicas"]
    assert keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    assert (
        hpa["scaleTargetRef"]["name"]
        == only(rendered("postgres"), "Deployment")["metadata"]["name"]
    )
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_a_drain_may_take_one_processor_at_a_time():
    objects = rendered("postgres")
    budget = only(objects, "PodDisruptionBudget")["spec"]
    assert budget == {
        "maxUnavailable": 1,
        "selector": only(objects, "Deployment")["spec"]["selector"],
    }


# --- Prometheus -----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["postgres", "sqlite"])
def test_the_service_monitor_scrapes_the_metrics_port_of_the_processors(overlay):
    objects = rendered(overlay)
    service, monitor = only(objects, "Service"), only(objects, "ServiceMonitor")
    pod_labels = only(objects, WORKLOAD[overlay])["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "metrics"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == (port["name"], "/metrics")
    # The operator names the job after the Service: the job the alerts select.
    assert service["metadata"]["name"] == "miniscan"
    assert 'job="miniscan"' in (REPO / "ops" / "prometheus" / "alerts.yml").read_text()
    assert service["spec"]["publishNotReadyAddresses"] is True
