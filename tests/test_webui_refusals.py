"""The web UI's start form is refused like the command line (issue 20 item 19): a run of 0 users never makes
progress, so POST /swarm with user_count=0 says why and starts nothing (no run, no run folder). In-process:
Locust's own web UI app, with bootbench's hooks on its own events, through Flask's test client."""

from __future__ import annotations

import pytest
from support.inprocess import environment, init, kept_signal_handlers

from bootbench.run import harness


@pytest.fixture
def web_app(tmp_path, monkeypatch):
    """A local environment with Locust's web UI (not listening) and bootbench's hooks; its test client."""
    monkeypatch.setattr("sys.argv", ["locust"])  # Locust's web UI reads its UI options from the command line
    monkeypatch.chdir(tmp_path)
    with kept_signal_handlers():
        env = environment("-i", "1")
        env.parsed_options.headless = False
        env.parsed_options.results_dir = str(tmp_path / "results")
        env.create_local_runner()
        env.create_web_ui("127.0.0.1", 0, delayed_start=True)
        init(env)
        yield env, env.web_ui.app.test_client()
        env.runner.quit()


@pytest.mark.parametrize("users", ["0", "-3"])
def test_a_start_with_no_user_is_refused_like_headless(web_app, tmp_path, users):
    env, client = web_app
    reply = client.post("/swarm", data={"user_count": users, "spawn_rate": "1", "host": ""}).get_json()
    assert reply["success"] is False
    assert reply["message"] == (f"{users} users start no user, so the run would never make progress; "
                                f"give 1 user or more")
    assert harness.of(env).current is None and env.runner.state == "ready"
    assert not (tmp_path / "results").exists()


def test_a_start_with_one_user_is_not_refused(web_app):
    env, client = web_app
    problem = harness.of(env)  # the check itself, without starting a run
    from bootbench.run import lifecycle

    assert lifecycle.check_web_run(problem, {"user_count": "1", "spawn_rate": "1", "host": ""}) is None
