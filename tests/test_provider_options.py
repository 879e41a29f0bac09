"""``--provider-option KEY=VALUE``: a driver's own settings, from the command line, LOCUST_PROVIDER_OPTION or a config
file; checked against what the driver declares (one sentence, exit 2); recorded in metrics.json with secrets redacted.

The provider here is a plugin's (tests/support/plugins.py: ``region`` with choices, ``team`` with a check, ``token``
secret) registered in a fresh provider table; checks in-process, one run in-process against a reference server.
"""

from __future__ import annotations

import pytest

from bootbench import providers
from support.ground_truth import FIXED_RUN_SERVER, ground_truth_run
from support.inprocess import headless_run
from support.plugins import import_locustfile, isolated_registry, locustfile_with_provider

TARGET = ("-H", "ws://127.0.0.1:9")
"""A host given (a plugin's provider the embedded server does not emulate); nothing connects in a check."""
SECRET = "tok-SECRET-3141592"


@pytest.fixture
def plugged(monkeypatch, tmp_path):
    """The provider ``plugged`` (a locustfile's) in a fresh provider table."""
    isolated_registry(monkeypatch)
    import_locustfile(locustfile_with_provider(tmp_path), monkeypatch)
    return providers.get("plugged")


def test_the_options_of_the_command_line_reach_the_settings_and_the_run_block(refusals, plugged):
    settings = refusals.check("--provider", "plugged", *TARGET, "--provider-option", "region=us",
                              "--provider-option", " team = blue7 ").settings
    assert settings.provider_options == (("region", "us"), ("team", "blue7"))
    assert settings.run_block()["provider_options"] == {"region": "us", "team": "blue7", "token": ""}
    driver = plugged(settings.driver_config("k-1234"), settings.clips())
    assert (driver.option("region"), driver.option("team"), driver.option("token")) == ("us", "blue7", "")


def test_an_option_not_given_is_its_default(refusals, plugged):
    settings = refusals.check("--provider", "plugged", *TARGET).settings
    assert settings.provider_options == ()
    assert settings.run_block()["provider_options"] == {"region": "eu", "team": "", "token": ""}


def test_the_options_come_from_locust_provider_option_too(refusals, plugged):
    settings = refusals.check("--provider", "plugged", *TARGET,
                              env={"LOCUST_PROVIDER_OPTION": "[region=us, team=green]"}).settings
    assert settings.provider_options == (("region", "us"), ("team", "green"))


def test_the_options_come_from_a_config_file_and_the_command_line_wins(refusals, plugged, tmp_path):
    conf = tmp_path / "plugged.conf"
    conf.write_text("provider = plugged\nprovider-option = [region=us, team=red]\n")
    settings = refusals.check("--config", str(conf), *TARGET).settings
    assert (settings.provider, settings.provider_options) == ("plugged", (("region", "us"), ("team", "red")))
    given = refusals.check("--config", str(conf), *TARGET, "--provider-option", "team=blue").settings
    assert given.provider_options == (("team", "blue"),)  # as Locust takes any option: the command line over the file


@pytest.mark.parametrize("args, sentence", [
    (["--provider-option", "colour=red"],
     "bootbench: the plugged provider has no option 'colour' (its options: region, team, token)"),
    (["--provider-option", "region=mars"], "bootbench: provider option region='mars' is not one of eu, us"),
    (["--provider-option", "team=blue team"],
     "bootbench: provider option team='blue team': a team is letters and digits"),
    (["--provider-option", "region"], "bootbench: --provider-option must be KEY=VALUE, not 'region'"),
    (["--provider-option", "=us"], "bootbench: --provider-option must be KEY=VALUE, not '=us'"),
])
def test_a_bad_key_or_value_is_one_sentence_and_nothing_starts(refusals, plugged, tmp_path, args, sentence):
    # in-process (tests/support/refusals.py); the real command's exit code 2: tests/test_plugin_example.py
    assert refusals.line("--headless", "-i", "1", "--provider", "plugged", *TARGET, *args) == sentence
    assert not (tmp_path / "results").exists()


def test_a_provider_without_options_refuses_any(refusals):
    line = refusals.line("--headless", "-i", "1", "--provider", "xai", "--provider-option", "agent=a1")
    assert line == "bootbench: the xai provider has no option 'agent' (its options: none)"


def test_a_secret_option_is_redacted_in_the_result_files_and_masked_in_the_log(shared_reference_server, plugged,
                                                                             tmp_path):
    """The driver logs its secret option on purpose (tests/support/plugins.py): the run log shows it masked."""
    server = shared_reference_server(**FIXED_RUN_SERVER)
    run = ground_truth_run(server, tmp_path / "r", "-i", "2", "--provider", "plugged",
                           "--provider-option", f"token={SECRET}", "--provider-option", "team=blue")
    assert run.exit_code == 0, run.stderr[-3000:]
    assert run.metrics["summary"]["successes"] == 2 and [s["protocol"] for s in run.sessions] == ["openai"] * 2
    assert run.metrics["run"]["provider_options"] == {"region": "eu", "team": "blue", "token": "***"}
    (log,) = run.folder.glob("boot_*.log")
    assert "plugged: sending session token *** in the region eu" in log.read_text()
    files = {path.name: path.read_text(errors="replace") for path in run.folder.iterdir()}
    assert {"metrics.json", "run.json", "samples.jsonl", log.name} <= set(files)
    assert [name for name, text in files.items() if SECRET in text] == []
    assert SECRET not in run.stdout + run.stderr


def test_a_secret_option_on_the_command_line_is_masked_in_the_recorded_command_line(plugged, tmp_path):
    """metrics.json's run.provenance records the command line: the secret's value is masked there too."""
    done = headless_run("-i", "1", "--provider", "plugged", "--timeout", "1", "--provider-option", f"token={SECRET}",
                        host=TARGET[1], results_dir=tmp_path / "r", command_line=True)
    command = done.metrics["run"]["provenance"]["command_line"]
    assert "--provider-option token=*** " in command and SECRET not in command
    assert done.metrics["errors"]["by_kind"] == {"connect_failed": 1}  # nothing listens at the target
