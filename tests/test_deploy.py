"""deploy/kubernetes/ and examples/grafana/, checked offline (no cluster, no Grafana on our machines).

Every manifest validates against the Kubernetes schemas that kubernetes-validate
ships, strictly (an unknown or misspelt field is an error); every command it
runs is one the tested parsers accept; keys come from a Secret that no file
holds; the workers' resources are the bench's figures. The dashboard's
queries name only metrics bootbench exports (tests/test_prometheus_real.py
runs each of them against a real Prometheus).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bootbench.server.cli import build_parser as server_parser
from bootbench.views.prometheus import METRICS
from support.processes import ROOT
from support.prometheus import DASHBOARD, iter_exprs
from support.refusals import locust_parser

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
"""The oldest Kubernetes release still supported when these were written (2026-12-03); newer ones accept them too."""
CAPACITY_RUN = "after, merged with main, SCHED_FIFO"
"""The bench/capacity.json run worker.yaml's comment names (the latest code measured)."""


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def resources() -> dict[tuple[str, str], dict]:
    """Every resource the kustomization applies, by (kind, name)."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for document in documents(KUBERNETES / name):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def container(name: str) -> dict:
    (only,) = resources()[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
    return only


def quantity_cores(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def quantity_mib(text: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    return float(text[:-2]) * units[text[-2:]]


def test_every_manifest_validates_strictly_against_the_kubernetes_schemas():
    found = resources()
    assert set(found) == {("ConfigMap", "bootbench-config"), ("Deployment", "bootbench-master"),
                          ("Service", "bootbench-master"), ("Deployment", "bootbench-worker"),
                          ("Deployment", "bootbench-reference"), ("Service", "bootbench-reference")}
    assert {p.name for p in KUBERNETES.glob("*.yaml")} == {
        "kustomization.yaml", *yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]}
    for (kind, name), resource in found.items():
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(found[("Deployment", "bootbench-worker")])
    broken["spec"]["replica"] = broken["spec"].pop("replicas")  # the validator does catch a misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_configmap_is_conf_locust_conf_and_both_locust_roles_read_it():
    config_map = resources()[("ConfigMap", "bootbench-config")]
    assert config_map["data"]["locust.conf"] == (ROOT / "conf" / "locust.conf").read_text()
    for name in ("bootbench-master", "bootbench-worker"):
        pod = resources()[("Deployment", name)]["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v.get("configMap")]
        assert volume["configMap"]["name"] == "bootbench-config"
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
        args = pod["containers"][0]["args"]
        assert args[:2] == ["--config", f"{mount['mountPath']}/locust.conf"]


def parse(args: list[str], env: list[dict]) -> object:
    """Locust's parser with bootbench's options on the image's entrypoint + ``args``, reading the container's env."""
    entry = json.loads(next(line.split(None, 1)[1] for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines()
                            if line.startswith("ENTRYPOINT")))
    config = ROOT / "conf" / "locust.conf"  # the ConfigMap's text (test above), at the path the pods mount it
    args = [str(config) if a == "/etc/bootbench/locust.conf" else a for a in args]
    return locust_parser().parse_args(entry[3:] + args, env_vars={e["name"]: e["value"] for e in env})


def test_the_master_serves_the_web_ui_and_metrics_where_its_service_and_scrape_annotations_point():
    deployment = resources()[("Deployment", "bootbench-master")]
    master = container("bootbench-master")
    parsed = parse(master["args"], master["env"])
    assert parsed.master and not parsed.headless  # the profile's headless = true is overridden for the web UI
    assert (parsed.web_host, parsed.master_bind_host) == ("0.0.0.0", "0.0.0.0")
    ports = {p["name"]: p["containerPort"] for p in master["ports"]}
    assert ports == {"web": parsed.web_port, "master": parsed.master_bind_port}
    service = resources()[("Service", "bootbench-master")]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "web": (parsed.web_port, "web"), "master": (parsed.master_bind_port, "master")}
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    for annotations in (deployment["spec"]["template"]["metadata"]["annotations"], service["metadata"]["annotations"]):
        assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(parsed.web_port),
                               "prometheus.io/path": "/metrics"}
    reference = container("bootbench-reference")
    served = server_parser().parse_args(reference["args"])
    assert reference["command"] == ["python", "-m", "bootbench.server"]
    assert parsed.host == f"http://bootbench-reference:{served.port}"


def test_workers_reach_the_masters_service_and_scale_by_replicas():
    worker = container("bootbench-worker")
    parsed = parse(worker["args"], worker.get("env", []))
    assert parsed.worker and parsed.master_host == "bootbench-master"
    assert resources()[("Deployment", "bootbench-worker")]["spec"]["replicas"] >= 1
    assert "ports" not in worker


def test_keys_come_from_a_secret_that_no_manifest_holds():
    for (kind, name), resource in resources().items():
        assert kind != "Secret"
        text = yaml.safe_dump(resource)
        assert not re.search(r"(?i)api_key\s*:|value:\s*sk-", text), name
    for name in ("bootbench-master", "bootbench-worker"):
        source = container(name)["envFrom"]
        assert source == [{"secretRef": {"name": "bootbench-keys", "optional": True}}]
        assert not any("KEY" in e["name"] for e in container(name).get("env", []))


def test_worker_resources_are_the_capacity_bench_figures():
    """worker.yaml: one process holds the sessions of the last level that held; its CPU and memory there."""
    run = json.loads((ROOT / "bench" / "capacity.json").read_text())["runs"][CAPACITY_RUN]
    held = [level for level in run["levels"] if level["holds"]]
    top = max(held, key=lambda level: level["users"])
    comment = (KUBERNETES / "worker.yaml").read_text()
    assert f'"{CAPACITY_RUN}"' in comment and f"holds {top['users']} sessions" in comment
    assert f"{top['resources']['client_cores']} cores" in comment and f"{top['resources']['client_rss_mib']} MiB" in comment
    requests = container("bootbench-worker")["resources"]["requests"]
    limits = container("bootbench-worker")["resources"]["limits"]
    assert top["resources"]["client_cores"] <= quantity_cores(requests["cpu"]) <= top["resources"]["client_cores"] * 1.25
    assert top["resources"]["client_rss_mib"] <= quantity_mib(requests["memory"]) <= top["resources"]["client_rss_mib"] * 1.5
    assert quantity_cores(limits["cpu"]) == 1.0  # one Python process uses one core at most


# ---------------------------------------------------------------- the Grafana dashboard


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bbootbench_[a-z_]+", expr))


def test_the_dashboard_queries_only_metrics_bootbench_exports():
    exprs = list(iter_exprs(dashboard()))
    assert exprs
    names = set().union(*map(metric_names, exprs))
    exported = {m.name for m in METRICS} | {"bootbench_phase_seconds_count", "bootbench_phase_seconds_sum"}
    assert names <= exported, names - exported
    (provider,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "provider"]
    assert metric_names(provider["definition"]) <= exported
    assert all('provider=~"$provider"' in expr for expr in exprs)


def test_the_dashboard_has_the_panels_the_issue_names_per_provider():
    panels = {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard()["panels"]}
    for title, phase in (("Cold start", "cold_start"), ("First response", "first_response"),
                         ("First audible", "first_audible")):
        assert panels[title] and all(f'phase="{phase}"' in e and "bootbench_phase_seconds{" in e for e in panels[title])
    assert panels["Success rate"] == ['bootbench_success_ratio{provider=~"$provider"}']
    assert "bootbench_iterations_failed_total" in panels["Errors by kind"][0]
    assert "by (provider, kind)" in panels["Errors by kind"][0]
    text = DASHBOARD.read_text()
    assert not re.search(r"(?i)api[_-]?key|password|token|127\.0\.0\.1|wss?://", text)
