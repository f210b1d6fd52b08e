"""The Kubernetes and KServe manifests in deploy/: the built-in kinds validate
against a recent Kubernetes (kubernetes-validate, strict: unknown fields fail),
the KServe kinds against the vendored parts of KServe's CRD schemas
(deploy/kserve/crd-schemas), and every ``seedlock serve`` setting they carry
(the Deployment's args, its ConfigMap's config file, the ServingRuntime's
args) is one the real argument parser accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from seedlock.cli import build_parser
from seedlock.serve.config_file import as_arguments, subparser

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="needs kubernetes-validate (the dev extra)")
jsonschema = pytest.importorskip("jsonschema", reason="needs jsonschema (the dev extra)")

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KSERVE = ROOT / "deploy" / "kserve"
SCHEMAS = KSERVE / "crd-schemas"
K8S_VERSION = "1.34.0"  # a recent release: validated against its schemas (kubernetes-validate bundles them)
KSERVE_SCHEMAS = {"ServingRuntime": "servingruntime.v1alpha1.yaml", "InferenceService": "inferenceservice.v1beta1.yaml"}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def documents(folder: Path) -> list[tuple[str, dict]]:
    found = []
    for path in sorted(folder.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(folder: Path) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for _, doc in documents(folder):
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def serve_args(args: list[str]):
    """``args`` parsed by the real ``seedlock serve`` parser (argparse exits on a flag it does not know)."""
    parser = build_parser("serve")
    return parser.parse_args(["serve", *args])


@pytest.fixture(scope="module")
def k8s():
    return by_kind(KUBERNETES)


def test_every_built_in_kind_validates_strictly_against_kubernetes(k8s):
    docs = [(name, doc) for name, doc in documents(KUBERNETES) if doc["kind"] != "Kustomization"]
    assert {d["kind"] for _, d in docs} >= {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap",
                                            "PersistentVolumeClaim", "PodDisruptionBudget"}  # fmt: skip
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
        assert DNS_1123.match(doc["metadata"]["name"]), name


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}


def test_a_broken_manifest_fails_validation(k8s):
    deployment = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"  # must be a number
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_deployment_probes_health_over_grpc_runs_non_root_and_mounts_read_only(k8s):
    (deployment,) = k8s["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == 8001, probe
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": 8001, "http": 8000, "metrics": 8002}
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"] and security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] == container["resources"]["limits"]  # Guaranteed QoS
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["models"]["readOnly"] and volumes["models"]["persistentVolumeClaim"]["readOnly"]
    assert mounts["secrets"]["readOnly"] and volumes["secrets"]["secret"]["optional"]
    assert mounts["config"]["readOnly"]
    # The read-only root filesystem leaves /tmp and the cache writable only through volumes.
    assert {"tmp", "cache"} <= set(volumes) and all("emptyDir" in volumes[n] for n in ("tmp", "cache"))
    (pvc,) = k8s["PersistentVolumeClaim"]
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadOnlyMany"]


def test_deployment_args_and_its_config_file_are_settings_seedlock_serve_accepts(k8s):
    (deployment,) = k8s["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    (configmap,) = k8s["ConfigMap"]
    config = yaml.safe_load(configmap["data"]["serve.yaml"])
    # What `seedlock serve` does with --config: the file's settings, then the command line's flags.
    parser = build_parser("serve")
    settings = parser.parse_args(["serve", *as_arguments(subparser(parser, "serve"), config, "serve.yaml"), *container["args"]])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")["mountPath"]
    assert settings.config == f"{mount}/serve.yaml" and configmap["metadata"]["name"] == \
        next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"]  # fmt: skip
    models = next(m for m in container["volumeMounts"] if m["name"] == "models")["mountPath"]
    assert settings.repository == models and settings.host == "0.0.0.0"
    assert (settings.port, settings.http_port, settings.metrics_port) == (8001, 8000, 8002)
    assert settings.log_format == "json" and settings.access_log
    # Draining must end before the kubelet's SIGKILL; threads match the CPU limit.
    assert settings.grace < pod["terminationGracePeriodSeconds"]
    assert settings.threads == int(container["resources"]["limits"]["cpu"])
    # Every secret path the config may name (commented out) lies under the secrets mount.
    secrets = next(m for m in container["volumeMounts"] if m["name"] == "secrets")["mountPath"]
    assert all(secrets in line for line in configmap["data"]["serve.yaml"].splitlines() if "/run/secrets" in line)


def test_service_and_autoscaler_point_at_the_deployment(k8s):
    (deployment,) = k8s["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = {s["metadata"]["name"]: s for s in k8s["Service"]}
    main = services["seedlock"]
    assert {p["name"]: p["port"] for p in main["spec"]["ports"]} == {"grpc": 8001, "http": 8000, "metrics": 8002}
    container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    for service in services.values():
        assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
        assert all(p["targetPort"] in container_ports for p in service["spec"]["ports"])
    assert services["seedlock-headless"]["spec"]["clusterIP"] == "None"
    (hpa,) = k8s["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert hpa["spec"]["minReplicas"] >= 2  # one replica draining never leaves none


def kserve_validator(kind: str):
    schema = yaml.safe_load((SCHEMAS / KSERVE_SCHEMAS[kind]).read_text())
    schema["$defs"] = yaml.safe_load((SCHEMAS / "_container.yaml").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_kserve_kinds_validate_against_the_vendored_crd_schemas():
    docs = documents(KSERVE)
    assert {d["kind"] for _, d in docs} == {"ServingRuntime", "InferenceService"}
    for name, doc in docs:
        errors = sorted(kserve_validator(doc["kind"]).iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{name}: " + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        assert DNS_1123.match(doc["metadata"]["name"]), name


def test_the_vendored_schemas_catch_mistakes():
    runtime = yaml.safe_load((KSERVE / "servingruntime.yaml").read_text())
    validator = kserve_validator("ServingRuntime")
    broken = yaml.safe_load(yaml.safe_dump(runtime))
    broken["spec"]["supportedModelFormats"][0]["priority"] = 0  # the CRD's minimum is 1
    assert not validator.is_valid(broken)
    broken = yaml.safe_load(yaml.safe_dump(runtime))
    del broken["spec"]["containers"]
    assert not validator.is_valid(broken)
    service = yaml.safe_load((KSERVE / "inferenceservice.yaml").read_text())
    validator = kserve_validator("InferenceService")
    broken = yaml.safe_load(yaml.safe_dump(service))
    broken["spec"]["predictor"]["scaleMetric"] = "gpu"  # not in the CRD's enum
    assert not validator.is_valid(broken)
    broken = yaml.safe_load(yaml.safe_dump(service))
    broken["spec"]["predictor"]["model"]["protocol"] = "v2"  # a typo of protocolVersion
    assert not validator.is_valid(broken)


def test_kserve_runtime_speaks_v2_for_onnx_and_its_args_are_serve_flags():
    kserve = by_kind(KSERVE)
    (runtime,) = kserve["ServingRuntime"]
    spec = runtime["spec"]
    assert "v2" in spec["protocolVersions"] and "grpc-v2" in spec["protocolVersions"]
    assert any(f["name"] == "onnx" for f in spec["supportedModelFormats"])
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"  # the name KServe looks for
    args = serve_args(container["args"])
    assert args.repository == "/mnt/models" and args.http_port == 8080 and args.port == 8001  # KServe's REST port: 8080
    assert container["securityContext"]["runAsUser"] == 10001 and container["securityContext"]["readOnlyRootFilesystem"]
    assert {p["containerPort"] for p in container["ports"]} == {8080}
    for service in kserve["InferenceService"]:
        model = service["spec"]["predictor"]["model"]
        assert model["runtime"] == runtime["metadata"]["name"] and model["modelFormat"]["name"] == "onnx"
        assert model["protocolVersion"] in spec["protocolVersions"]
        if model["protocolVersion"] == "grpc-v2":
            assert [(p["name"], p["containerPort"]) for p in model["ports"]] == [("h2c", args.port)]
