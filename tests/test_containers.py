"""The container files, checked statically (no Docker engine on our machines).

They must parse, name the right images, ports and volumes, and every command
they run must be accepted by the same parsers that the tested code paths use.
"""

from __future__ import annotations

import json
import re
import shlex

import yaml

from bootbench import preflight
from bootbench.server.cli import build_parser as server_parser
from support.processes import ROOT
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
    assert set(services) == {"reference", "master", "worker"}
    assert services["master"]["ports"] == ["127.0.0.1:8089:8089"]
    for name in ("master", "reference"):
        assert "../results:/results" in services[name]["volumes"]
    assert "ports" not in services["worker"], "workers must be scalable (--scale worker=N)"
    assert services["reference"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert all(s["image"] == "bootbench:latest" for s in services.values())


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
