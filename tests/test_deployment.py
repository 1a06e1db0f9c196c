"""The deployment files: the Kubernetes manifests valid against the Kubernetes schemas (strict:
no unknown field), and they, the Dockerfile and the server agreeing on ports, probes and the
drain's timings. No cluster and no Docker daemon needed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from voiceguard.server import ServerConfig
from voiceguard.server.drain import WIND_UP_GRACE

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
DOCKERFILE = (ROOT / "Dockerfile").read_text()
#: The Kubernetes version the manifests are checked against (kubernetes-validate's schemas).
KUBERNETES = "1.30.0"


def resources() -> list[dict[str, Any]]:
    out = []
    for path in MANIFESTS:
        out += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def deployment() -> dict[str, Any]:
    (found,) = [r for r in resources() if r["kind"] == "Deployment"]
    return found


def container() -> dict[str, Any]:
    (found,) = deployment()["spec"]["template"]["spec"]["containers"]
    assert isinstance(found, dict)
    return found


def env(name: str) -> str:
    (value,) = [e["value"] for e in container()["env"] if e["name"] == name]
    return str(value)


def dockerfile_env(name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", DOCKERFILE)
    assert match, f"the Dockerfile sets no {name}"
    return match.group(1)


def test_there_are_manifests_to_check() -> None:
    assert MANIFESTS
    assert {r["kind"] for r in resources()} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    }


@pytest.mark.parametrize(
    "resource", resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}"
)
def test_each_resource_is_valid_against_the_kubernetes_schema(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, KUBERNETES, strict=True)


def test_a_manifest_with_a_mistake_is_refused() -> None:
    # The check can fail: an unknown field under the Pod spec is an error in strict mode.
    broken = json.loads(json.dumps(deployment()))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 960
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_the_grace_period_covers_the_whole_drain() -> None:
    drain = float(env("VOICEGUARD_DRAIN_TIMEOUT"))
    assert (
        drain == ServerConfig().drain_timeout == float(dockerfile_env("VOICEGUARD_DRAIN_TIMEOUT"))
    )
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # The drain, the wind-up's goodbye, the preStop pause and uvicorn's last 5 s of closing.
    assert grace >= drain + WIND_UP_GRACE + float(pre_stop[1]) + 5


def test_probes_ports_and_the_image_agree_with_the_server() -> None:
    port = int(env("VOICEGUARD_PORT"))
    assert port == int(dockerfile_env("VOICEGUARD_PORT"))
    assert f"EXPOSE {port}" in DOCKERFILE
    (declared,) = container()["ports"]
    assert declared["containerPort"] == port
    readiness = container()["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/healthz"  # 503 when full or draining: out of the Service
    liveness = container()["livenessProbe"]
    assert "httpGet" not in liveness  # a full or draining server must not be restarted
    assert env("VOICEGUARD_HOST") == "0.0.0.0" == dockerfile_env("VOICEGUARD_HOST")
    # Exec form: the server is PID 1 and gets the SIGTERM that starts the drain.
    assert 'ENTRYPOINT ["voiceguard", "serve"]' in DOCKERFILE
    strategy = deployment()["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_the_autoscaler_scales_on_a_metric_the_server_exports() -> None:
    (hpa,) = [r for r in resources() if r["kind"] == "HorizontalPodAutoscaler"]
    (metric,) = hpa["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name == "voiceguard_calls_active"
    assert name in (ROOT / "docs" / "server.md").read_text()
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment()["metadata"]["name"]
