"""The container files, checked statically (no Docker engine on our machines).

They must parse, name the right images, ports and volumes, and every command
they run must be accepted by the same parsers that the tested code paths use.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import yaml

from bootbench import preflight
from bootbench.server.cli import build_parser as server_parser
from support.processes import ROOT
from support.prometheus import require
from support.refusals import locust_parser

DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def expand(value: str) -> str:
    """Compose's ${VAR:-default} with the defaults."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def environment(service: str) -> dict[str, str]:
    """The environment compose gives ``service``, with the defaults of its ${VAR:-default} values."""
    return {name: expand(value) for name, value in compose()["services"][service]["environment"].items()}


def command(service: str) -> list[str]:
    """The command compose gives ``service``, with the defaults of its ${VAR:-default} values."""
    return [expand(arg) for arg in compose()["services"][service]["command"]]


def locust_parse(args: list[str], env: dict[str, str] | None = None):
    """Locust's parser with bootbench's options, reading ``env`` (never this shell's LOCUST_* variables)."""
    return locust_parser().parse_args(args, env_vars=env or {})


def entrypoint_args() -> list[str]:
    (entry,) = [v for k, v in dockerfile_instructions() if k == "ENTRYPOINT"]
    return json.loads(entry)


def test_dockerfile_builds_from_python_311_and_runs_locust_as_a_user():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert ("USER", "bootbench") in instructions
    exposed = {p for k, v in instructions if k == "EXPOSE" for p in v.split()}
    assert {"8089", "5557", "8765"} <= exposed
    entry = entrypoint_args()
    assert entry[:3] == ["locust", "-f", "/opt/bootbench/locustfile.py"]
    assert any(k == "RUN" and "pip install ." in v for k, v in instructions)


def test_every_file_the_dockerfile_copies_exists():
    for kind, value in dockerfile_instructions():
        if kind == "COPY":
            *sources, _dest = shlex.split(value)
            for source in sources:
                assert (ROOT / source).exists(), source


def test_compose_has_master_workers_and_reference_server_on_the_right_ports_and_volumes():
    services = compose()["services"]
    assert set(services) == {"reference", "master", "worker", "prometheus", "grafana"}
    assert services["master"]["ports"] == ["127.0.0.1:8089:8089"]
    for name in ("master", "reference"):
        assert "../results:/results" in services[name]["volumes"]
    assert "ports" not in services["worker"], "workers must be scalable (--scale worker=N)"
    assert services["reference"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert all(services[name]["image"] == "bootbench:latest" for name in ("reference", "master", "worker"))


def test_compose_commands_are_ones_the_tested_parsers_accept():
    services = compose()["services"]
    entry = entrypoint_args()[3:]
    master = locust_parse(entry + command("master"), environment("master"))
    assert master.master and master.num_users == 4 and master.iterations == 100
    assert master.results_dir == "/results"
    worker = locust_parse(entry + command("worker"))
    assert worker.worker and worker.master_host == "master"

    reference = server_parser().parse_args(services["reference"]["command"])
    assert reference.host == "0.0.0.0" and reference.port == 8765
    assert services["reference"]["entrypoint"] == ["python", "-m", "bootbench.server"]
    assert master.host == f"http://reference:{reference.port}"
    preflight.check_url(master.host)


def test_every_locust_variable_compose_sets_reaches_the_option_of_that_name():
    """configargparse ignores an unknown LOCUST_* variable silently; a misspelt one would leave its option unset."""
    for service in ("master", "worker"):
        env = environment(service)
        parsed = locust_parse(entrypoint_args()[3:] + command(service), env)
        variables = {name: value for name, value in env.items() if name.startswith("LOCUST_")}
        assert variables, f"{service} sets no LOCUST_* variable"
        for name, value in variables.items():
            assert getattr(parsed, name.removeprefix("LOCUST_").lower(), None) == value, name


def test_compose_prometheus_scrapes_the_masters_web_ui_port_and_its_config_passes_promtool():
    services = compose()["services"]
    prometheus = services["prometheus"]
    config_mount = next(v for v in prometheus["volumes"] if v.endswith(":/etc/prometheus/prometheus.yml:ro"))
    config_file = (COMPOSE.parent / config_mount.split(":", 1)[0]).resolve()
    assert prometheus["command"] == ["--config.file=/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_file.read_text())
    (job,) = config["scrape_configs"]
    master = locust_parse(entrypoint_args()[3:] + command("master"), environment("master"))
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": [f"master:{master.web_port}"]}]
    assert services["master"]["ports"] == [f"127.0.0.1:{master.web_port}:{master.web_port}"]
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"] and services["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    promtool = require("promtool")
    checked = subprocess.run([promtool, "check", "config", str(config_file)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_grafana_gets_the_prometheus_data_source_and_the_example_dashboard():
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    provisioning = (COMPOSE.parent / next(h for h, c in mounts.items() if c == "/etc/grafana/provisioning")).resolve()
    dashboards = (COMPOSE.parent / next(h for h, c in mounts.items() if c == "/var/lib/grafana/dashboards")).resolve()
    assert dashboards == ROOT / "examples" / "grafana" and (dashboards / "bootbench.json").is_file()
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert (source["type"], source["url"], source["uid"]) == ("prometheus", "http://prometheus:9090", "prometheus")
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "bootbench.yaml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == "/var/lib/grafana/dashboards/bootbench.json"
