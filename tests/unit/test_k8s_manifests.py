"""deploy/k8s: valid against the Kubernetes API schemas (kubernetes-validate,
offline), shaped as the issue asks (probes, HPA, KEDA, replica set, AOF,
Secrets, NetworkPolicies) and in step with compose.yaml.

The base is rendered here (its kustomization uses resources, namespace,
labels and images only); the production overlay, whose Secret generators
need a real kustomize, is rendered with ``kubectl kustomize`` when kubectl is
installed, from the example secret files and a fresh PKI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tools import pki

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays/production"
KUBERNETES_VERSION = kubernetes_validate.latest_version()
#: The Minequest processes, as compose.yaml names them.
PROCESSES = ("auth", "wallet", "mining", "mining-worker", "quests", "gateway")
GRPC_PORTS = {"auth": 50051, "mining": 50052, "wallet": 50053, "quests": 50054}
_CLUSTER_SCOPED = {"Namespace"}
Doc = dict[str, Any]


def render_base() -> list[Doc]:
    """What ``kustomize build deploy/k8s/base`` makes of the base."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert set(kustomization) <= {
        "apiVersion",
        "kind",
        "namespace",
        "labels",
        "resources",
        "images",
    }
    images = {image["name"]: image for image in kustomization.get("images", [])}
    docs: list[Doc] = []
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((BASE / resource).read_text()):
            if doc["kind"] not in _CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
            for pairs in kustomization.get("labels", []):
                doc["metadata"].setdefault("labels", {}).update(pairs["pairs"])
            for container in containers(doc):
                image = images.get(container["image"])
                if image:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
            docs.append(doc)
    return docs


def containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else {}
    found: list[Doc] = pod.get("containers", [])
    return found


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def validate(docs: list[Doc]) -> list[str]:
    """Schema errors of the built-in kinds; custom resources (KEDA) are checked by hand."""
    problems = []
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    return problems


def test_every_base_manifest_matches_the_kubernetes_schemas() -> None:
    docs = render_base()
    assert len(docs) > 20
    assert validate(docs) == []


def test_every_process_runs_with_probes_resources_and_its_own_certificate() -> None:
    docs = render_base()
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == set(PROCESSES)
    for name, deployment in deployments.items():
        [container] = containers(deployment)
        assert container["readinessProbe"], name
        assert container["livenessProbe"], name
        assert container["resources"]["requests"]["cpu"], name
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        tls = next(volume for volume in volumes if volume["name"] == "tls")
        assert tls["secret"]["secretName"] == f"tls-{name}"
        if name in GRPC_PORTS:
            health = ["python", "-m", "runtime.healthcheck", f"127.0.0.1:{GRPC_PORTS[name]}"]
            assert container["readinessProbe"]["exec"]["command"] == health, name
            assert container["livenessProbe"]["exec"]["command"] == health, name
    gateway = containers(deployments["gateway"])[0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/api/health"
    assert "tcpSocket" in gateway["livenessProbe"], "a backend outage must not restart gateways"


def test_the_gateway_scales_on_cpu_and_the_workers_on_the_consumer_groups_lag() -> None:
    docs = render_base()
    [hpa] = by_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gateway"
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    scaled = by_kind(docs, "ScaledObject")["mining-worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "mining-worker"
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis-streams"
    assert trigger["metadata"]["stream"] == "mining-clicks"
    assert trigger["metadata"]["consumerGroup"] == "mining-workers"
    assert int(trigger["metadata"]["lagCount"]) > 0
    auth = by_kind(docs, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert auth["spec"]["secretTargetRef"][0]["name"] == "redis-auth"


def test_mongodb_is_a_replica_set_and_redis_keeps_an_append_only_file() -> None:
    sets = by_kind(render_base(), "StatefulSet")
    mongo = sets["mongo"]
    assert mongo["spec"]["replicas"] == 3
    assert "--replSet" in containers(mongo)[0]["command"]
    assert "--keyFile" in containers(mongo)[0]["command"]
    redis = containers(sets["redis"])[0]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert sets["redis"]["spec"]["volumeClaimTemplates"]


def test_only_the_gateway_is_reachable_from_outside() -> None:
    docs = render_base()
    services = by_kind(docs, "Service")
    exposed = {name for name, svc in services.items() if svc["spec"].get("type") == "LoadBalancer"}
    assert exposed == {"gateway"}
    assert [port["port"] for port in services["gateway"]["spec"]["ports"]] == [8080]
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    open_to_all = {
        name
        for name, policy in policies.items()
        for rule in policy["spec"].get("ingress", [])
        if "from" not in rule
    }
    assert open_to_all == {"gateway-from-anywhere"}
    assert policies["gateway-from-anywhere"]["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "gateway"
    }


def referenced_secrets(docs: list[Doc]) -> set[str]:
    text = yaml.safe_dump_all(docs)
    names = set(re.findall(r"secretName: (\S+)", text))
    for doc in docs:
        for container in containers(doc):
            names |= {
                s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s
            }
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
        if doc["kind"] == "Job":
            pod = doc["spec"]["template"]["spec"]
            for container in pod["containers"]:
                names |= {s["secretRef"]["name"] for s in container.get("envFrom", [])}
    return names


def test_the_base_holds_no_secret_and_the_overlay_generates_every_one_it_needs() -> None:
    docs = render_base()
    assert by_kind(docs, "Secret") == {}
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    generated = {generator["name"] for generator in overlay["secretGenerator"]}
    assert referenced_secrets(docs) <= generated
    sources = [
        source
        for generator in overlay["secretGenerator"]
        for source in (*generator.get("envs", []), *generator.get("files", []))
    ]
    assert all(source.split("=")[-1].startswith("secrets/") for source in sources)
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(OVERLAY / "secrets/stores.env")],
        cwd=ROOT,
        check=False,
    )
    assert ignored.returncode == 0, "the overlay's secrets/ must be git-ignored"
    examples = {path.name for path in (OVERLAY / "secrets-example").iterdir()}
    assert {Path(s).name for s in sources if s.endswith(".env")} == examples


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl to run kustomize")
def test_the_production_overlay_renders_and_validates(tmp_path: Path) -> None:
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    secrets = tree / "overlays/production/secrets"
    secrets.mkdir()
    for example in (tree / "overlays/production/secrets-example").iterdir():
        shutil.copy(example, secrets / example.name)
    (secrets / "jwt-ed25519.pem").write_text("placeholder\n")
    (secrets / "replica-set.key").write_text("placeholder\n")
    pki.ensure(secrets / "pki")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(tree / "overlays/production")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert validate(docs) == []
    secret_names = set(by_kind(docs, "Secret"))
    # every reference points at a generated Secret (hash-suffixed names rewritten)
    assert referenced_secrets(docs) <= secret_names
    assert all(
        doc["metadata"].get("namespace") == "minequest"
        for doc in docs
        if doc["kind"] != "Namespace"
    )


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    return services


def env_example_names() -> set[str]:
    return {
        line.partition("=")[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }


def k8s_env_names(docs: list[Doc], name: str) -> set[str]:
    config = by_kind(docs, "ConfigMap")["minequest-config"]["data"]
    [container] = containers(by_kind(docs, "Deployment")[name])
    names = {env["name"] for env in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(config)
        else:
            example = OVERLAY / "secrets-example" / f"{secret_file(source['secretRef']['name'])}"
            names |= {line.partition("=")[0] for line in example.read_text().splitlines() if line}
    return names


def secret_file(secret: str) -> str:
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    [generator] = [g for g in overlay["secretGenerator"] if g["name"] == secret]
    return Path(generator["envs"][0]).name


def test_kubernetes_and_compose_run_the_same_processes_with_the_same_settings() -> None:
    docs = render_base()
    compose = compose_services()
    documented = env_example_names()
    for name in PROCESSES:
        service = compose[name]
        [container] = containers(by_kind(docs, "Deployment")[name])
        assert container["command"] == service["command"], name
        k8s = k8s_env_names(docs, name)
        assert k8s <= documented, f"{name}: names .env.example does not know: {k8s - documented}"
        # What compose fixes or requires, Kubernetes sets too.
        needed = {
            key
            for key, value in service["environment"].items()
            if "${" not in str(value) or ":?" in str(value)
        }
        assert needed - k8s == set(), name
        for key in needed & {k for k in k8s if k.endswith("_PORT")}:
            fixed = str(service["environment"][key])
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            if "${" not in fixed:
                assert env.get(key) == fixed, f"{name}: {key}"
    for name, port in GRPC_PORTS.items():
        svc = by_kind(docs, "Service")[name]
        assert {p["name"]: p["port"] for p in svc["spec"]["ports"]}["grpc"] == port
