"""The provider table: built-ins, installed packages' entry points and a locustfile's ``@register``, each refusal
one sentence naming its sources; a provider reaches a run, and a worker without it fails the run, never hangs.

In-process with a fresh table per test (tests/support/plugins.py); real processes where the process boundary is the
behaviour: a locustfile's provider on a master and its worker, a plugin installed on the master only.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bootbench import providers
from bootbench.providers import registry
from bootbench.providers.base import API_VERSION, Driver
from bootbench.providers.openai_realtime import OpenAIRealtimeDriver
from support.ground_truth import FIXED_RUN_SERVER, ground_truth_run
from support.plugins import (import_locustfile, install_distribution, isolated_registry, locustfile_with_provider,
                             plugged_module)
from bootbench.server import protocols as server_protocols
from support.processes import LOCUST, LOCUSTFILE, clean_env, free_port, locust_process, read_jsonl, run_locust

PROVIDERS = "bootbench.providers"


def test_the_table_holds_every_builtin_first_each_named_as_bootbenchs(monkeypatch):
    isolated_registry(monkeypatch)
    assert providers.names()[:len(registry.BUILTINS)] == tuple(registry.BUILTINS)
    for name, target in registry.BUILTINS.items():
        driver = providers.get(name)
        assert issubclass(driver, Driver) and driver.name == name
        assert f"{driver.__module__}:{driver.__qualname__}" == target
        assert registry.source(name) == f"bootbench ({target})"
        assert registry.declared_version(driver) == API_VERSION


def test_an_installed_package_adds_its_provider_by_entry_point_and_is_named_by_it(monkeypatch, tmp_path):
    site = install_distribution(tmp_path / "site", "bootbench-plugged",
                                {PROVIDERS: {"plugged": "plugged:PluggedDriver"}}, {"plugged.py": plugged_module()})
    monkeypatch.syspath_prepend(str(site))
    isolated_registry(monkeypatch)
    assert providers.names() == (*registry.BUILTINS, "plugged")
    assert providers.get("plugged").__module__ == "plugged"
    assert registry.source("plugged") == ("the package bootbench-plugged (entry point plugged = "
                                          "plugged:PluggedDriver)")


def test_a_locustfile_provider_that_takes_a_builtins_name_is_refused_naming_both_sources(monkeypatch, tmp_path):
    isolated_registry(monkeypatch)
    path = locustfile_with_provider(tmp_path, name="openai")
    import_locustfile(path, monkeypatch)  # no error here: Locust would print the import's traceback
    with pytest.raises(providers.ProviderError) as refused:
        providers.get("gemini")  # every question asked of the table says it
    assert str(refused.value) == (
        "two sources define the provider 'openai': bootbench (bootbench.providers.openai_realtime:"
        f"OpenAIRealtimeDriver) and PluggedDriver in {path}")


def test_two_installed_packages_that_give_one_name_are_refused_naming_both(monkeypatch, tmp_path):
    for package in ("first-plugin", "second-plugin"):
        module = package.replace("-", "_")
        site = install_distribution(tmp_path / package, package, {PROVIDERS: {"plugged": f"{module}:PluggedDriver"}},
                                    {f"{module}.py": plugged_module()})
        monkeypatch.syspath_prepend(str(site))
    isolated_registry(monkeypatch)
    with pytest.raises(providers.ProviderError) as refused:
        providers.names()
    sentence = str(refused.value)
    assert sentence.startswith("two sources define the provider 'plugged': the package ")
    assert "first-plugin (entry point plugged = first_plugin:PluggedDriver)" in sentence
    assert "second-plugin (entry point plugged = second_plugin:PluggedDriver)" in sentence


def test_a_module_imported_again_registers_its_class_again_without_a_clash(monkeypatch, tmp_path):
    isolated_registry(monkeypatch)
    path = locustfile_with_provider(tmp_path)
    first = import_locustfile(path, monkeypatch).PluggedDriver
    second = import_locustfile(path, monkeypatch).PluggedDriver
    assert first is not second and providers.get("plugged") is second


class Later(OpenAIRealtimeDriver):
    name = "later"
    api_version = API_VERSION + 1


class Undeclared(OpenAIRealtimeDriver):
    name = "undeclared"


class NotADriver:
    name = "nothing"
    api_version = API_VERSION


@pytest.mark.parametrize("cls, sentence", [
    (Later, f"the provider 'later' from Later in {__file__} was written for driver API version {API_VERSION + 1}; "
            f"this bootbench has version {API_VERSION}"),
    (Undeclared, f"the provider 'undeclared' from Undeclared in {__file__} does not say which driver API version it "
                 f"was written for (declare api_version = {API_VERSION} on its class)"),
    (NotADriver, f"NotADriver in {__file__} is not a bootbench driver (a subclass of bootbench.providers.base.Driver "
                 "with a name)"),
])
def test_a_class_for_another_contract_or_none_is_refused_in_one_sentence(monkeypatch, cls, sentence):
    isolated_registry(monkeypatch)
    assert providers.register(cls) is cls  # a decorator hands the class back, refused or not
    with pytest.raises(providers.ProviderError) as refused:
        providers.get("openai")  # every question asked of the table says it
    assert str(refused.value) == sentence


def test_a_plugin_that_fails_to_import_is_named_in_one_sentence(monkeypatch, tmp_path):
    site = install_distribution(tmp_path / "site", "broken-plugin", {PROVIDERS: {"broken": "broken:Driver"}},
                                {"broken.py": "import no_such_module_anywhere\n"})
    monkeypatch.syspath_prepend(str(site))
    isolated_registry(monkeypatch)
    with pytest.raises(providers.ProviderError) as refused:
        providers.get("openai")
    assert str(refused.value) == ("the package broken-plugin (entry point broken = broken:Driver) could not be "
                                  "loaded: ModuleNotFoundError: No module named 'no_such_module_anywhere'")


def test_an_unknown_provider_is_one_sentence_naming_the_known_ones(refusals):
    # in-process (tests/support/refusals.py); the real command's exit code 2: test_a_clash_in_a_locustfile_...
    line = refusals.line("--headless", "-i", "1", "--provider", "skype")
    assert line == (f"bootbench: unknown provider 'skype'; choose one of {', '.join(providers.names())} (or install "
                    f"the package that provides it: `bootbench providers` lists what this machine has)")


def test_the_embedded_server_refuses_a_provider_it_does_not_emulate_before_anything_starts(refusals, monkeypatch,
                                                                                          tmp_path):
    isolated_registry(monkeypatch)
    import_locustfile(locustfile_with_provider(tmp_path), monkeypatch)
    line = refusals.line("--headless", "-i", "1", "--provider", "plugged")
    assert line == (f"bootbench: the embedded reference server does not emulate the provider 'plugged' (it "
                    f"emulates {', '.join(server_protocols.names())}); give the service's URL with -H")
    assert refusals.check("--headless", "-i", "1", "--provider", "plugged", "-H", "ws://127.0.0.1:9").settings \
        .provider == "plugged"
    assert not (tmp_path / "results").exists()


def test_a_clash_in_a_locustfile_is_one_sentence_and_exit_2_without_a_traceback(tmp_path):
    """A real process: the locustfile's import succeeds, pre-flight says the sentence."""
    locustfile = locustfile_with_provider(tmp_path, name="gemini")
    done = run_locust("-u", "1", "-i", "1", cwd=tmp_path, locustfile=locustfile, timeout=60)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("bootbench: ")]
    assert lines == [f"bootbench: two sources define the provider 'gemini': bootbench "
                     f"(bootbench.providers.gemini_live:GeminiLiveDriver) and PluggedDriver in {locustfile}"]
    assert "Traceback" not in done.stderr and not (tmp_path / "results").exists()


@pytest.mark.truth  # held to the reference server's ground truth within milliseconds
def test_a_locustfiles_provider_reaches_a_run(shared_reference_server, monkeypatch, tmp_path):
    """In-process: the class the locustfile registers drives every iteration (the server saw its OpenAI wire)."""
    isolated_registry(monkeypatch)
    import_locustfile(locustfile_with_provider(tmp_path), monkeypatch)
    run = ground_truth_run(shared_reference_server(**FIXED_RUN_SERVER), tmp_path / "r", "-i", "3",
                           "--provider", "plugged")
    assert run.exit_code == 0, run.stderr[-3000:]
    assert run.metrics["run"]["provider"] == "plugged" and run.metrics["summary"]["successes"] == 3
    assert [s["protocol"] for s in run.sessions] == ["openai"] * 3 and run.violations == 0
    for sample, session in zip(run.samples, run.sessions):
        assert sample["first_response_ms"] == pytest.approx(session["measured"]["first_response_ms"], abs=10)


@pytest.mark.slow
def test_a_locustfiles_provider_reaches_the_workers_of_a_distributed_run(reference_server, tmp_path):
    """A real master and worker, each importing the locustfile that defines the provider."""
    server = reference_server(**FIXED_RUN_SERVER)
    locustfile = locustfile_with_provider(tmp_path)
    port = free_port()
    master = locust_process("--headless", "--master", "--master-bind-port", str(port), "--expect-workers", "1",
                            "-u", "2", "-r", "2", "-i", "6", "--provider", "plugged", "-H", server.url,
                            "--results-dir", str(tmp_path / "r"), cwd=tmp_path, log=tmp_path / "master.log",
                            locustfile=locustfile)
    worker = locust_process("--worker", "--master-port", str(port), cwd=tmp_path, log=tmp_path / "worker.log",
                            locustfile=locustfile)
    try:
        assert master.wait(90) == 0, (tmp_path / "master.log").read_text()[-3000:]
        assert worker.wait(30) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        for process in (master, worker):
            if process.poll() is None:
                process.kill()
                process.wait()
    (folder,) = (tmp_path / "r").iterdir()
    samples = read_jsonl(folder / "samples.jsonl")
    assert len(samples) == 6 and all(s["ok"] for s in samples)
    assert {s["worker"] for s in samples} != {"local"} and len({s["worker"] for s in samples}) == 1
    sessions = [r for r in read_jsonl(server.ground_truth) if r["session"] is not None]
    assert [s["protocol"] for s in sessions] == ["openai"] * 6 and all(s["outcome"] == "ok" for s in sessions)


@pytest.mark.slow
def test_a_provider_installed_on_the_master_but_not_on_a_worker_fails_the_run_in_one_sentence(tmp_path):
    """Real processes: the plugin is installed for the master only (its folder on the master's PYTHONPATH).

    The worker says one sentence and exits with 2; the master ends the run as failed (exit 1) with the worker's
    sentence in metrics.json's run.aborted; nothing hangs (each process is given 60 s).
    """
    site = install_distribution(tmp_path / "site", "bootbench-plugged",
                                {PROVIDERS: {"plugged": "plugged:PluggedDriver"},
                                 "bootbench.server_protocols": {"plugged": "bootbench.server.protocols.openai:build"}},
                                {"plugged.py": plugged_module()})
    port = free_port()
    master = locust_process("--headless", "--master", "--master-bind-port", str(port), "--expect-workers", "1",
                            "-u", "1", "-i", "3", "--provider", "plugged", "--results-dir", str(tmp_path / "r"),
                            cwd=tmp_path, log=tmp_path / "master.log", env={"PYTHONPATH": str(site)})
    worker = subprocess.Popen([*LOCUST, "-f", str(LOCUSTFILE), "--worker", "--master-port", str(port)], cwd=tmp_path,
                              env=clean_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, worker_stderr = worker.communicate(timeout=60)
        assert master.wait(60) == 1, (tmp_path / "master.log").read_text()[-3000:]
    finally:
        for process in (master, worker):
            if process.poll() is None:
                process.kill()
                process.wait()
    sentence = (f"unknown provider 'plugged'; choose one of {', '.join(providers.names())} (or install the package "
                f"that provides it: `bootbench providers` lists what this machine has)")
    assert worker.returncode == 2
    said = [line for line in worker_stderr.splitlines() if line.startswith("bootbench: ")]
    assert said == [f"bootbench: this worker cannot take part in the run: {sentence}"]
    assert "Traceback" not in worker_stderr
    (folder,) = (tmp_path / "r").iterdir()
    aborted = json.loads((folder / "metrics.json").read_text())["run"]["aborted"]
    assert aborted.startswith("worker ") and aborted.endswith(f" cannot take part in the run: {sentence}")
    assert f"bootbench: {aborted}" in (tmp_path / "master.log").read_text()


def test_a_plugin_protocol_that_takes_a_builtins_name_is_refused_before_a_run_and_by_the_server(refusals,
                                                                                                 monkeypatch, tmp_path):
    """The reference server's table has the same rule: pre-flight says it, and so does the server process."""
    site = install_distribution(tmp_path / "site", "shadow-plugin",
                                {"bootbench.server_protocols": {"openai": "shadow:build"}}, {"shadow.py": ""})
    monkeypatch.syspath_prepend(str(site))
    sentence = ("two sources define the reference server protocol 'openai': bootbench "
                "(bootbench.server.protocols.openai:build) and package shadow-plugin (shadow:build)")
    assert refusals.line("--headless", "-i", "1") == f"bootbench: {sentence}"
    served = subprocess.run([sys.executable, "-m", "bootbench.server", "--port", "0"], capture_output=True, text=True,
                            env=clean_env({"PYTHONPATH": str(site)}), timeout=60)
    assert served.returncode == 1 and served.stdout == ""
    assert served.stderr.splitlines()[-1] == f"python -m bootbench.server: error: {sentence}"
    assert "Traceback" not in served.stderr
