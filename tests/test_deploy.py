"""The deployment files stay valid and agree with the code: every YAML parses, the Kubernetes
manifests validate against the API's schemas offline (kubernetes-validate), the KEDA object has
what KEDA needs, the grace periods fit `drain_grace_s`, the image is slim, non-root, with the
embedded models and a HEALTHCHECK; and the pre-stop drain works against a real server."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import aiohttp
import kubernetes_validate
import pytest
import yaml

from voicebot.config import load_config

from .support import serve
from .test_cluster import connect
from .test_sessions import flows_config

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30.0"


def manifests() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def of_kind(kind: str) -> list[dict]:
    return [d for d in manifests() if d["kind"] == kind]


def test_every_yaml_file_parses():
    files = [*ROOT.glob("deploy/**/*.yaml"), ROOT / "docker-compose.yml"]
    assert len(files) >= 9
    for path in files:
        assert list(yaml.safe_load_all(path.read_text())), path


def test_kustomization_names_files_that_exist():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        assert (K8S / name).is_file(), name
    for generator in kustomization["configMapGenerator"]:
        for name in generator["files"]:
            assert (K8S / name).is_file(), name


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifests_validate_against_the_kubernetes_schemas(doc):
    if doc["apiVersion"].startswith("keda.sh/"):
        pytest.skip("a KEDA custom resource: checked by test_scaled_object_scales_on_calls")
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_is_caught():
    (sts,) = of_kind("StatefulSet")
    sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "soon"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSION, strict=True)


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_pods_drain_before_they_stop():
    (sts,) = of_kind("StatefulSet")
    spec = sts["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    grace = float(_env(container)["DRAIN_GRACE_S"])
    assert spec["terminationGracePeriodSeconds"] >= grace + 10
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:3] == ["python", "-m", "voicebot.cluster.drain"]
    assert float(command[command.index("--grace") + 1]) == grace
    assert spec["securityContext"]["runAsNonRoot"] is True
    (pdb,) = of_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"] == sts["spec"]["selector"]
    env = _env(container)
    assert env["INSTANCE_URL"].endswith("/i/$(POD_NAME)")
    proxy = (K8S / "nginx.conf").read_text()
    assert "(?<pod>voicebot-[0-9]+)" in proxy and "voicebot-pods" in proxy


def test_scaled_object_scales_on_calls():
    (scaled,) = of_kind("ScaledObject")
    (sts,) = of_kind("StatefulSet")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": sts["metadata"]["name"],
    }
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert "voicebot_active_calls" in trigger["metadata"]["query"]
    assert float(trigger["metadata"]["threshold"]) > 0
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_the_container_config_loads_single_and_clustered():
    path = ROOT / "deploy" / "config.yaml"
    alone = load_config(path, env={})
    assert alone.cluster.redis_url == "" and alone.server.host == "0.0.0.0"
    fleet = load_config(
        path, env={"REDIS_URL": "redis://redis:6379/0", "INSTANCE_URL": "https://x/i/vb-a"}
    )
    assert fleet.cluster.redis_url == "redis://redis:6379/0"
    assert fleet.server.drain_grace_s == 30


def test_dockerfile_is_slim_non_root_with_models_and_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.M)
    # the embedded models ship in the `local` wheels; Twilio transfers and outbound need its SDK
    assert "'.[local,cluster,twilio]'" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, re.M)
    assert "COPY deploy/config.yaml ./config.yaml" in text


def test_compose_runs_redis_two_instances_and_a_proxy():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "vb-a", "vb-b", "proxy"} <= set(services)
    ids = {services[n]["environment"]["INSTANCE_ID"] for n in ("vb-a", "vb-b")}
    assert ids == {"vb-a", "vb-b"}
    for name in ("vb-a", "vb-b"):
        env = services[name]["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["INSTANCE_URL"].endswith(f"/i/{name}")
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "location /i/vb-a/ { proxy_pass http://vb-a:8080/; }" in nginx
    assert "location /i/vb-b/ { proxy_pass http://vb-b:8080/; }" in nginx


async def test_pre_stop_drain_turns_readiness_off_and_waits_for_calls(tmp_path):
    async with serve(tmp_path, flows_config()) as server:
        c, _ = await connect(server)
        drain = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "voicebot.cluster.drain", "--port", str(server.port), "--grace", "20"),
            stdout=asyncio.subprocess.PIPE,
        )
        assert drain.stdout is not None
        assert b"1 calls in progress" in await asyncio.wait_for(drain.stdout.readline(), 20)
        async with aiohttp.ClientSession() as http:
            r = await http.get(f"{server.http}/ready")
            assert r.status == 503 and (await r.json())["status"] == "draining"
            r = await http.post(f"{server.http}/drain", headers={"X-Forwarded-For": "1.2.3.4"})
            assert r.status == 403  # relayed by a proxy: not this host's own hook
        assert drain.returncode is None  # still waiting for the call
        await c.close()
        assert await asyncio.wait_for(drain.wait(), 10) == 0
        assert b"no call left" in await drain.stdout.read()
