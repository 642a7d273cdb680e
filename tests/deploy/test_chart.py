"""The Helm chart, rendered and linted offline by Helm's own Go SDK (helm-python-sdk).

Every object it renders, with the default values and with each feature on, is
checked against the Kubernetes OpenAPI schemas (strict) of the oldest and newest
supported Kubernetes, and the Prometheus Operator objects against their CRDs'
structure. Beyond schemas: the RBAC equals the operator's documented needs, the
probes and flags match what `transfersearch operator` serves and accepts, the
monitors select what the operator really creates, and the chart's copies of the
CRD, alert rules and dashboard are the single sources, unchanged.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml

from tests.fakes.kube_validation import KUBERNETES_VERSIONS, name_of, problems
from tests.paths import ROOT as REPO_ROOT
from transfersearch_operator import children
from transfersearch_operator.config import DEFAULT_IMAGE
from transfersearch_operator.policy import AdmissionPolicy
from transfersearch_trainer.api.spec import load_manifest
from transfersearch_trainer.api.version import __version__

ROOT = REPO_ROOT
CHART = ROOT / "charts" / "transfersearch"
RELEASE, NAMESPACE = "ts", "transfersearch-system"
FULLNAME = f"{RELEASE}-transfersearch"
KPS = {"release": "kube-prometheus-stack"}  # kube-prometheus-stack's selector label
MONITORS = {
    "serviceMonitor": {"enabled": True, "additionalLabels": KPS},
    "podMonitor": {"enabled": True, "additionalLabels": KPS},
    "prometheusRule": {"enabled": True, "additionalLabels": KPS},
    "grafanaDashboard": {"enabled": True},
}
DIGEST = "sha256:" + "ab" * 32

# Each values set is rendered once (module fixture) and checked by every test below.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "service-monitor": {"serviceMonitor": MONITORS["serviceMonitor"]},
    "pod-monitor": {"podMonitor": MONITORS["podMonitor"]},
    "prometheus-rule": {"prometheusRule": MONITORS["prometheusRule"]},
    "grafana-dashboard": {"grafanaDashboard": MONITORS["grafanaDashboard"]},
    "namespaced": {"watch": {"namespaces": ["team-a", "team-b"]}},
    "cluster": {"watch": {"scope": "cluster"}},
    "no-network-policies": {"networkPolicy": {"enabled": False}},
    "policy": {
        "policy": {
            "allowedImages": ["registry.example.com/ts/trainer:*"],
            "allowedS3Endpoints": ["http://minio.storage:9000", "https://s3.example.com"],
            "credentialsSecretLabel": {"key": "example.com/for-searches", "value": "yes"},
            "allowedPriorityClasses": ["research-high", "research-low"],
            "allowedTolerationKeys": [],
        }
    },
    "everything-namespaced": {
        **MONITORS,
        "watch": {"namespaces": ["team-a", "team-b"]},
        "rbac": {"watchCRDs": True},
        "grafanaDashboard": {
            "enabled": True,
            "namespace": "monitoring",
            "labels": {"grafana_dashboard": "1", "team": "nas"},
            "annotations": {"grafana_folder": "TransferSearch"},
        },
    },
    "everything-cluster": {
        **MONITORS,
        "watch": {"scope": "cluster"},
        "rbac": {"watchCRDs": True},
        "serviceAccount": {"name": "ts-operator", "annotations": {"team": "nas"}},
        "operator": {
            "image": {"repository": "registry.example.com/ts/operator", "digest": DIGEST},
            "imagePullSecrets": [{"name": "registry"}],
            "verbose": True,
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "system-cluster-critical",
            "podAnnotations": {"team": "nas"},
        },
        "trainer": {
            "image": {"repository": "registry.example.com/ts/trainer", "tag": "1.2.3"},
            "s3": {
                "bucket": "nas-models",
                "endpoint": "http://minio.storage:9000",
                "credentialsSecret": "transfersearch-s3",
            },
        },
        "policy": {"allowedImages": ["*"], "allowedPriorityClasses": ["*"]},
        "networkPolicy": {
            "metricsFrom": [
                {
                    "namespaceSelector": {"matchLabels": {"team": "observability"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                }
            ],
            "apiServer": {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [443]},
            "s3": {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.1/32"]}}],
                "ports": [443],
            },
            "trainerNamespaces": ["team-a", "team-c"],
        },
    },
}


def render(values: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The rendered objects and NOTES.txt of one install."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    notes = manifests.pop("transfersearch/templates/NOTES.txt")
    objects = [d for text in manifests.values() for d in yaml.safe_load_all(text) if d]
    return objects, notes


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(values)[0] for name, values in VALUE_SETS.items()}


def merged(values: dict[str, Any]) -> dict[str, Any]:
    with helm.Chart.load(CHART) as chart:
        return chart.merge_values(values)


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} {kind}s"
    return found[0]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def served_namespaces(values: dict[str, Any]) -> list[str] | None:
    """None: every namespace (cluster scope)."""
    watch = merged(values)["watch"]
    return None if watch["scope"] == "cluster" else (watch["namespaces"] or [NAMESPACE])


# --- Helm's own checks ---------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_is_clean(name: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[name], strict=True, kube_version="v1.31.0")
    assert report["errors"] == []
    # Severity 1 is information ("icon is recommended"); 2 warnings, 3 errors.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_metadata_matches_the_product() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["appVersion"] == __version__
    assert meta["kubeVersion"] == f">={KUBERNETES_VERSIONS[0]}.0-0"


# --- every rendered object is valid ----------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_objects_are_valid(
    rendered: dict[str, list[dict[str, Any]]], name: str, version: str
) -> None:
    objects = rendered[name]
    assert objects
    failures = {name_of(o): problems(o, version) for o in objects}
    assert {k: v for k, v in failures.items() if v} == {}
    names = [name_of(o) for o in objects]
    assert len(names) == len(set(names)), "two objects with the same kind, namespace and name"
    for obj in objects:
        if not obj["kind"].startswith("Cluster"):
            assert obj["metadata"].get("namespace"), f"{name_of(obj)}: no namespace"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_chart_crds_are_valid(version: str) -> None:
    with helm.Chart.load(CHART) as chart:
        crds = [yaml.safe_load(c["data"]) for c in chart.crds]
    assert [c["metadata"]["name"] for c in crds] == ["transfersearches.transfersearch.io"]
    for crd in crds:
        assert problems(crd, version) == []


def test_validation_refuses_what_a_server_would(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The checks above can fail: a stray field or a wrong type in each kind is caught."""
    for obj in rendered["everything-cluster"]:
        broken = copy.deepcopy(obj)
        broken.setdefault("spec", {})["unknownField"] = 1
        if obj["kind"] in ("ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding"):
            broken = {**copy.deepcopy(obj), "unknownField": 1}
        assert problems(broken, KUBERNETES_VERSIONS[0]), name_of(obj)
    deployment = copy.deepcopy(only(rendered["default"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    assert problems(deployment, KUBERNETES_VERSIONS[0])


def test_feature_flags_add_exactly_their_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    def kinds(name: str) -> list[str]:
        return sorted(o["kind"] for o in rendered[name])

    policies = ["NetworkPolicy", "NetworkPolicy"]  # the operator's, the trainers'
    base = sorted(["Deployment", "Role", "RoleBinding", "Service", "ServiceAccount", *policies])
    assert kinds("default") == base
    assert kinds("no-network-policies") == [k for k in base if k != "NetworkPolicy"]
    assert kinds("policy") == base
    assert kinds("service-monitor") == sorted([*base, "ServiceMonitor"])
    assert kinds("pod-monitor") == sorted([*base, "PodMonitor"])
    assert kinds("prometheus-rule") == sorted([*base, "PrometheusRule"])
    assert kinds("grafana-dashboard") == sorted([*base, "ConfigMap"])
    assert kinds("namespaced") == sorted([*base, "Role", "RoleBinding", "NetworkPolicy"])
    assert kinds("cluster") == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",  # the operator's: trainers anywhere need networkPolicy.trainerNamespaces
        "Service",
        "ServiceAccount",
    ]
    assert not of_kind(rendered["everything-cluster"], "Role")


# --- RBAC: exactly what docs/operator.md says the operator calls --------------------------


def documented_rules() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) from the table "RBAC (least privilege)" in docs/operator.md."""
    text = (ROOT / "docs" / "operator.md").read_text()
    section = text.split("## RBAC (least privilege)", 1)[1].split("\n## ", 1)[0]
    found = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        group, resource = (c.strip("`").strip('"') for c in cells[:2])
        found |= {(group, resource, verb.strip()) for verb in cells[2].split(",")}
    assert len(found) >= 10, "the RBAC table in docs/operator.md was not found"
    return found


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rbac_grants_exactly_the_documented_needs(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = rendered[name]
    namespaces = served_namespaces(VALUE_SETS[name])
    sa = only(objects, "ServiceAccount")["metadata"]
    subject = {"kind": "ServiceAccount", "name": sa["name"], "namespace": NAMESPACE}
    crd_rule = {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")}
    cluster_roles = {
        r["metadata"]["name"]: granted(r["rules"]) for r in of_kind(objects, "ClusterRole")
    }
    watch_crds = merged(VALUE_SETS[name])["rbac"]["watchCRDs"]
    assert cluster_roles.pop(f"{FULLNAME}-crds", None) == (crd_rule if watch_crds else None)
    if namespaces is None:
        assert cluster_roles == {FULLNAME: documented_rules()}
        assert not of_kind(objects, "Role")
    else:
        assert cluster_roles == {}
        roles = {r["metadata"]["namespace"]: granted(r["rules"]) for r in of_kind(objects, "Role")}
        assert roles == dict.fromkeys(namespaces, documented_rules())
        bindings = of_kind(objects, "RoleBinding")
        assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(namespaces)
        for binding in bindings:
            assert binding["roleRef"] == {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": FULLNAME,
            }
            assert binding["subjects"] == [subject]
    for binding in of_kind(objects, "ClusterRoleBinding"):
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["name"] in (FULLNAME, f"{FULLNAME}-crds")
    every_rule = [r for o in objects for r in o.get("rules", [])]
    assert every_rule
    for rule in every_rule:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
        if "secrets" in rule["resources"]:
            # A Secret's labels say whether searches may use it; its data is never read
            # (trial pods get it by reference), and no Secret is listed or watched.
            assert (rule["resources"], rule["verbs"]) == (["secrets"], ["get"])


# --- the operator Deployment --------------------------------------------------------------


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["operator"]
    container: dict[str, Any] = pod["containers"][0]
    return container


def flag(args: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_runs_hardened_and_probed_on_its_health_port(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = rendered[name]
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == children.RUNTIME_UID != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == only(objects, "ServiceAccount")["metadata"]["name"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert ports == {
        "health": int(flag(args, "liveness-port")[0]),
        "metrics": int(flag(args, "metrics-port")[0]),
    }
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    resources = container["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp"}
    assert all("secret" not in v for v in pod["volumes"])


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_serves_the_chosen_namespaces_with_the_trainer_image(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    args = operator_container(rendered[name])["args"]
    assert args[0] == "operator"
    namespaces = served_namespaces(VALUE_SETS[name])
    if namespaces is None:
        assert "--all-namespaces" in args
        assert not flag(args, "namespace")
    else:
        assert "--all-namespaces" not in args
        assert flag(args, "namespace") == namespaces
    trainer = merged(VALUE_SETS[name])["trainer"]["image"]
    expected = f"{trainer['repository']}:{trainer['tag'] or __version__}"
    assert flag(args, "trainer-image") == [expected]


def test_default_images_are_the_operators_defaults(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """The chart's default trainer image is the one the operator itself would pick."""
    container = operator_container(rendered["default"])
    assert flag(container["args"], "trainer-image") == [DEFAULT_IMAGE]
    assert container["image"] == f"transfersearch-operator:{__version__}"


def test_digest_pins_the_operator_image(rendered: dict[str, list[dict[str, Any]]]) -> None:
    container = operator_container(rendered["everything-cluster"])
    assert container["image"] == f"registry.example.com/ts/operator@{DIGEST}"
    assert flag(container["args"], "trainer-image") == ["registry.example.com/ts/trainer:1.2.3"]
    assert "--verbose" in container["args"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_command_line_accepts_the_rendered_args(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """The flags are parsed by the real CLI (typer's click), so a renamed flag fails here."""
    import typer

    from transfersearch_trainer.cli.main import app

    group = typer.main.get_command(app)
    args = operator_container(rendered[name])["args"]
    with group.make_context("transfersearch", list(args)) as ctx:
        command = group.get_command(ctx, args[0])  # type: ignore[attr-defined]
        assert command is not None
        params = command.make_context(args[0], list(args[1:]), parent=ctx).params
        with pytest.raises(Exception, match="No such option"):
            command.make_context(args[0], [*args[1:], "--no-such-flag"], parent=ctx)
    namespaces = served_namespaces(VALUE_SETS[name])
    assert params["all_namespaces"] is (namespaces is None)
    assert list(params["namespace"] or []) == (namespaces or [])
    assert params["liveness_port"] == merged(VALUE_SETS[name])["operator"]["healthPort"]
    s3 = merged(VALUE_SETS[name])["trainer"]["s3"]
    assert params["s3_bucket"] == (s3["bucket"] or None)
    if s3["bucket"]:
        assert (params["s3_prefix"], params["s3_endpoint"], params["s3_credentials_secret"]) == (
            s3["prefix"],
            s3["endpoint"] or None,
            s3["credentialsSecret"] or None,
        )


@pytest.mark.parametrize("name", VALUE_SETS)
def test_operator_reads_the_admission_policy_the_values_say(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    """The chart's env is parsed by the operator's own reader, so a renamed variable fails here."""
    container = operator_container(rendered[name])
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    policy = AdmissionPolicy.from_env(env)
    values = merged(VALUE_SETS[name])["policy"]
    label = values["credentialsSecretLabel"]
    assert policy == AdmissionPolicy(
        images=tuple(values["allowedImages"]),
        s3_endpoints=tuple(values["allowedS3Endpoints"]),
        credentials_label=(label["key"], label["value"]),
        priority_classes=tuple(values["allowedPriorityClasses"]),
        toleration_keys=tuple(values["allowedTolerationKeys"]),
    )
    if name == "default":  # safe defaults: the operator's own, nothing beyond the chart's
        assert policy == AdmissionPolicy()


# --- NetworkPolicies: who reaches whom ------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    ip: str


@dataclass(frozen=True)
class Address:
    """Outside the cluster's pods: the API server, S3, the internet."""

    ip: str


Endpoint = Pod | Address


def connects(
    objects: list[dict[str, Any]], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether the NetworkPolicies let `src` open a connection to `dst`, by Kubernetes' rules.

    A pod selected by no policy of a direction is open in that direction; a selected
    pod admits what some rule of a selecting policy admits (peers and ports). Both
    the source's egress and the destination's ingress must admit the connection.
    """
    policies = of_kind(objects, "NetworkPolicy")
    out = not isinstance(src, Pod) or _admits(policies, src, "Egress", dst, port, protocol)
    into = not isinstance(dst, Pod) or _admits(policies, dst, "Ingress", src, port, protocol)
    return out and into


def _admits(
    policies: list[dict[str, Any]], pod: Pod, direction: str, peer: Endpoint, port: int, proto: str
) -> bool:
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and matches(p["spec"]["podSelector"], pod.labels)
        and direction in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            ports = rule.get("ports")
            if ports and not any(
                p.get("protocol", "TCP") == proto and p.get("port") == port for p in ports
            ):
                continue
            sources = rule.get(peers)
            if not sources or any(_peer(s, peer, policy) for s in sources):
                return True
    return False


def _peer(spec: dict[str, Any], other: Endpoint, policy: dict[str, Any]) -> bool:
    if "ipBlock" in spec:
        ip = ipaddress.ip_address(other.ip)
        block = spec["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in spec:
        ns_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not matches(spec["namespaceSelector"], ns_labels):
            return False
    elif other.namespace != policy["metadata"]["namespace"]:
        return False
    return "podSelector" not in spec or matches(spec["podSelector"], other.labels)


PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, "10.1.0.5")
NEIGHBOUR = Pod("team-a", {"app": "notebook"}, "10.1.0.6")
DNS = Pod("kube-system", {"k8s-app": "kube-dns"}, "10.1.0.2")
API_SERVER = Address("10.0.0.1")  # where the kubernetes Service sends its traffic
S3 = Address("52.216.0.1")
ELSEWHERE = Address("93.184.216.34")


def operator_pod(objects: list[dict[str, Any]]) -> Pod:
    labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return Pod(NAMESPACE, labels, "10.1.0.10")


def trainer_pod(namespace: str) -> Pod:
    return Pod(namespace, trainer_pod_template()["metadata"]["labels"], "10.1.0.11")


def test_network_policies_open_metrics_to_monitoring_only(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["default"]
    operator, trainer = operator_pod(objects), trainer_pod(NAMESPACE)
    assert connects(objects, PROMETHEUS, operator, 8000)
    assert connects(objects, PROMETHEUS, trainer, 9090)
    for intruder in (NEIGHBOUR, trainer, ELSEWHERE):
        assert not connects(objects, intruder, operator, 8000), intruder
    for intruder in (NEIGHBOUR, operator, ELSEWHERE):
        assert not connects(objects, intruder, trainer, 9090), intruder
    # kopf's /healthz is for the kubelet's probes alone: they come from the pod's own node,
    # which NetworkPolicies always let through, so no rule opens the health port.
    health = {p["name"]: p["containerPort"] for p in operator_container(objects)["ports"]}
    assert not connects(objects, PROMETHEUS, operator, health["health"])
    assert not connects(objects, NEIGHBOUR, operator, health["health"])
    # Nothing else reaches a trial pod.
    assert not connects(objects, PROMETHEUS, trainer, 8080)


def test_network_policies_let_each_pod_reach_only_what_it_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["default"]
    operator, trainer = operator_pod(objects), trainer_pod(NAMESPACE)
    for port in (443, 6443):
        assert connects(objects, operator, API_SERVER, port)
    assert connects(objects, operator, DNS, 53, "UDP")
    assert not connects(objects, operator, ELSEWHERE, 80)
    assert not connects(objects, operator, trainer, 9090)
    assert connects(objects, trainer, S3, 443)
    assert connects(objects, trainer, DNS, 53, "UDP")
    assert connects(objects, trainer, DNS, 53, "TCP")
    assert not connects(objects, trainer, API_SERVER, 6443)
    assert not connects(objects, trainer, ELSEWHERE, 80)
    assert not connects(objects, trainer, operator, 8000)
    assert not connects(objects, trainer, trainer_pod(NAMESPACE), 9090)


def test_network_policies_follow_the_configured_peers_and_endpoints(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["everything-cluster"]
    operator = operator_pod(objects)
    namespaces = sorted(
        p["metadata"]["namespace"]
        for p in of_kind(objects, "NetworkPolicy")
        if p["metadata"]["name"] == f"{FULLNAME}-trainers"
    )
    assert namespaces == ["team-a", "team-c"]
    trainer = trainer_pod("team-a")
    # metricsFrom names Prometheus' pods in the namespaces labelled team=observability.
    assert not connects(objects, PROMETHEUS, operator, 8000)
    scraper = Pod("obs", {"app.kubernetes.io/name": "prometheus"}, "10.1.0.7")
    policies = [copy.deepcopy(p) for p in objects]  # the namespace carries the label
    for policy in of_kind(policies, "NetworkPolicy"):
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": "obs"}}
    assert connects(policies, scraper, operator, 8000)
    assert connects(policies, scraper, trainer, 9090)
    assert not connects(policies, Pod("obs", {"app": "other"}, "10.1.0.8"), trainer, 9090)
    # The API server on 443 is the operator's; trainers reach S3 on 443 but not it.
    assert connects(objects, operator, API_SERVER, 443)
    assert not connects(objects, operator, S3, 443)
    assert connects(objects, trainer, S3, 443)
    assert not connects(objects, trainer, API_SERVER, 443)
    # trainer.s3.endpoint is on port 9000: trainers may go there.
    assert connects(objects, trainer, Address("10.2.0.9"), 9000)
    assert not connects(rendered["default"], trainer_pod(NAMESPACE), Address("10.2.0.9"), 9000)
    policy_ports = {
        r["port"]
        for p in of_kind(rendered["policy"], "NetworkPolicy")
        if p["metadata"]["name"] == f"{FULLNAME}-trainers"
        for rule in p["spec"]["egress"]
        for r in rule["ports"]
        if r["protocol"] == "TCP" and r["port"] != 53
    }
    assert policy_ports == {443, 9000}  # policy.allowedS3Endpoints' ports too


def test_network_policies_can_be_turned_off(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["no-network-policies"]
    assert connects(objects, NEIGHBOUR, operator_pod(objects), 8000)


# --- monitoring: the monitors select what the operator really creates ------------------------


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "Exists" and not present:
            return False
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_service_and_service_monitor_reach_the_operator_metrics(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["service-monitor"]
    deployment = only(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = only(objects, "Service")
    assert matches({"matchLabels": service["spec"]["selector"]}, pod_labels)
    assert matches(deployment["spec"]["selector"], pod_labels)
    container_ports = {p["name"] for p in operator_container(objects)["ports"]}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]
    assert "metrics" in container_ports
    monitor = only(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == KPS["release"]
    assert matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    # The trainer pods carry app.kubernetes.io/name=transfersearch too: not selected.
    trainer = trainer_pod_template()
    assert not matches({"matchLabels": service["spec"]["selector"]}, trainer["metadata"]["labels"])


def trainer_pod_template() -> dict[str, Any]:
    """The pod template of the Job the operator creates for a search."""
    spec = load_manifest(ROOT / "examples" / "finetune.yaml").spec
    ref = children.SearchRef(name="jigsaw", namespace="team-a", uid="u-1", generation=1)
    template: dict[str, Any] = children.job(ref, spec, DEFAULT_IMAGE)["spec"]["template"]
    return template


@pytest.mark.parametrize("name", ["everything-namespaced", "everything-cluster"])
def test_pod_monitor_selects_the_trainer_pods_metrics_port(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    monitor = only(rendered[name], "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == KPS["release"]
    template = trainer_pod_template()
    assert matches(monitor["spec"]["selector"], template["metadata"]["labels"])
    operator_pod = only(rendered[name], "Deployment")["spec"]["template"]
    assert not matches(monitor["spec"]["selector"], operator_pod["metadata"]["labels"])
    ports = {
        p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]
    }
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    assert ports["metrics"] == 9090
    namespaces = served_namespaces(VALUE_SETS[name])
    expected = {"any": True} if namespaces is None else {"matchNames": namespaces}
    assert monitor["spec"]["namespaceSelector"] == expected


def test_prometheus_rule_is_the_rules_file_unchanged(
    rendered: dict[str, list[dict[str, Any]]], promtool: str, tmp_path: Path
) -> None:
    rule = only(rendered["prometheus-rule"], "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == KPS["release"]
    source = yaml.safe_load((ROOT / "observability" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == source
    # ... and what the PrometheusRule carries is a rule file Prometheus loads.
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run(
        [promtool, "check", "rules", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout


def test_dashboard_config_map_is_the_dashboard_unchanged(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    source = (ROOT / "observability" / "grafana-dashboard.json").read_text()
    default = only(rendered["grafana-dashboard"], "ConfigMap")
    assert default["data"] == {"transfersearch.json": source}
    assert json.loads(default["data"]["transfersearch.json"])["uid"] == "transfersearch"
    assert default["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert default["metadata"]["namespace"] == NAMESPACE
    custom = only(rendered["everything-namespaced"], "ConfigMap")
    assert custom["metadata"]["namespace"] == "monitoring"
    assert custom["metadata"]["labels"]["team"] == "nas"
    assert custom["metadata"]["annotations"] == {"grafana_folder": "TransferSearch"}


def test_notes_tell_where_to_start() -> None:
    _, notes = render(VALUE_SETS["namespaced"])
    assert "serves team-a, team-b" in notes
    assert "kubectl -n team-a apply -f examples/finetune.yaml" in notes
    assert "label secret transfersearch-s3 transfersearch.io/credentials=true" in notes
    assert "add it to policy.allowedS3Endpoints" in notes
    _, notes = render(VALUE_SETS["everything-cluster"])
    assert "serves every namespace" in notes
    assert "PodMonitor" in notes


# --- single sources -------------------------------------------------------------------------

COPIES = {
    "crds/transfersearch.io_transfersearches.yaml": "crds/transfersearch.io_transfersearches.yaml",
    "observability/prometheus-rules.yaml": "files/prometheus-rules.yaml",
    "observability/grafana-dashboard.json": "files/grafana-dashboard.json",
}


@pytest.mark.parametrize("source", COPIES)
def test_chart_copy_is_identical_to_its_source(source: str) -> None:
    copy_path = CHART / COPIES[source]
    assert copy_path.read_bytes() == (ROOT / source).read_bytes(), (
        f"{copy_path.relative_to(ROOT)} differs from {source}: run `make chart-sync`"
    )


def test_chart_ships_every_crd_and_nothing_else() -> None:
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(
        p.name for p in (ROOT / "crds").glob("*.yaml")
    )
    assert sorted(p.name for p in (CHART / "files").iterdir()) == sorted(
        Path(c).name for c in COPIES.values() if c.startswith("files/")
    )


def test_chart_sync_target_copies_what_the_tests_compare() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nchart-sync:", 1)[1].split("\n\n", 1)[0]
    for source in COPIES:
        assert source in recipe, f"make chart-sync does not copy {source}"


# --- values.schema.json ----------------------------------------------------------------------


def values_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def test_values_schema_accepts_the_default_and_every_tested_values_set() -> None:
    schema = values_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(yaml.safe_load((CHART / "values.yaml").read_text()))
    with helm.Chart.load(CHART) as chart:
        for values in VALUE_SETS.values():
            chart.validate_schema(values)
            validator.validate(chart.merge_values(values))


def unchecked_keys(values: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Keys of values.yaml that the schema lets through without naming them.

    Objects with named properties must be closed (additionalProperties: false);
    only maps (labels, annotations, resources) and Kubernetes structures passed
    through as they are (securityContext, affinity) are open, and those are
    validated in the rendered objects.
    """
    if not isinstance(values, dict) or "properties" not in schema:
        return []
    out = [] if schema.get("additionalProperties") is False else [f"{path or '.'} is open"]
    for key, value in values.items():
        if key not in schema["properties"]:
            out.append(f"{path}.{key}")
        else:
            out += unchecked_keys(value, schema["properties"][key], f"{path}.{key}")
    return out


def test_values_schema_names_every_default_key() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert unchecked_keys(values, values_schema()) == []
    assert unchecked_keys({"operator": {"typo": 1}}, values_schema()) == [".operator.typo"]


BAD_VALUES = {
    "unknown top-level key": {"replicaCount": 2},
    "misspelt key": {"serviceMonitor": {"enable": True}},
    "wrong type": {"operator": {"metricsPort": "8000"}},
    "privileged port": {"operator": {"healthPort": 80}},
    "unknown scope": {"watch": {"scope": "all"}},
    "namespace glob": {"watch": {"namespaces": ["team-*"]}},
    "numeric label value": {"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}},
    "bad duration": {"podMonitor": {"interval": "30 seconds"}},
    "bad digest": {"operator": {"image": {"digest": "latest"}}},
    "tag in repository": {"trainer": {"image": {"repository": "trainer:1.0"}}},
    "boolean as string": {"rbac": {"create": "yes"}},
    "env without a name": {"operator": {"extraEnv": [{"value": "x"}]}},
    "image glob inside": {"policy": {"allowedImages": ["registry.example.com/*/trainer"]}},
    "endpoint without scheme": {"policy": {"allowedS3Endpoints": ["minio.storage:9000"]}},
    "two endpoints in one": {"policy": {"allowedS3Endpoints": ["http://a:1,http://b:2"]}},
    "credentials label as a string": {"policy": {"credentialsSecretLabel": "a=b"}},
    "bad priority class": {"policy": {"allowedPriorityClasses": ["High Priority"]}},
    "policy typo": {"policy": {"allowedImage": []}},
    "network policy port": {"networkPolicy": {"apiServer": {"to": [], "ports": [0]}}},
    "network policy typo": {"networkPolicy": {"enable": False}},
}


@pytest.mark.parametrize("bad", BAD_VALUES.values(), ids=list(BAD_VALUES))
def test_values_schema_refuses_bad_values(bad: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(bad)
        with pytest.raises(helm.HelmValuesError):
            chart.render(bad, name=RELEASE, namespace=NAMESPACE)
        assert not jsonschema.Draft7Validator(values_schema()).is_valid(chart.merge_values(bad))


def test_values_file_names_every_feature_flag_off_by_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for feature in MONITORS:
        assert values[feature]["enabled"] is False, feature
    assert values["watch"] == {"scope": "namespaces", "namespaces": []}
    # Safe defaults: NetworkPolicies on, and a policy that allows nothing beyond the chart's.
    assert values["networkPolicy"]["enabled"] is True
    assert values["policy"] == {
        "allowedImages": [],
        "allowedS3Endpoints": [],
        "credentialsSecretLabel": {"key": "transfersearch.io/credentials", "value": "true"},
        "allowedPriorityClasses": [],
        "allowedTolerationKeys": ["nvidia.com/gpu"],
    }
    assert re.fullmatch(r"[a-z-]+", values["trainer"]["image"]["repository"])
