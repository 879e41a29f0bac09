"""A SIGTERM ends a sweep within --stop-timeout and a few seconds, even while a large level is starting (issue 20
item 1). A real Locust process: the signal and the exit are the behaviour."""

from __future__ import annotations

import json
import signal
import time

from support.processes import locust_process, wait_for_samples

STOP_TIMEOUT = 2
FEW_SECONDS = 10.0
"""Stopping the users started so far, then the final write (metrics.json, the CSV files and report.html, whose
libraries are imported only then): 3.6 to 8.4 s measured from the signal to the exit on two busy cores."""


def test_a_sigterm_while_a_large_level_starts_ends_the_run_with_its_files(tmp_path, shared_reference_server):
    server = shared_reference_server()
    log = tmp_path / "out.log"
    proc = locust_process("--headless", "--sweep", "1,600", "-i", "2", "--wait-ms", "0", "-H", server.url,
                          "--stop-timeout", str(STOP_TIMEOUT), "--results-dir", str(tmp_path / "r"),
                          cwd=tmp_path, log=log)
    try:
        assert wait_for_samples(tmp_path / "r", 2), log.read_text()[-3000:]
        time.sleep(2)  # level 2 is ramping up: about 200 of its 600 users have started
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(STOP_TIMEOUT + 60)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    output = log.read_text()
    assert code == 1, output[-3000:]
    assert took <= STOP_TIMEOUT + FEW_SECONDS, f"the run took {took:.1f} s to end after SIGTERM"
    (folder,) = (tmp_path / "r").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["run"]["interrupted"] == "SIGTERM"
    assert [level["users"] for level in metrics["levels"]] == [1, 600]
    assert all((folder / name).is_file() for name in ("summary.csv", "samples.csv", "report.html"))
    (warning,) = metrics["run"]["warnings"]
    assert warning.startswith("the run ended before all 600 users had started: at most ")
    assert warning.endswith(" ran at once (spawn rate 100/s)")
