"""The headless progress line: exact numbers every interval while the run goes, none once it is over."""

from __future__ import annotations

import logging

import gevent

from bootbench.samples import Sample
from bootbench.views import progress


def test_progress_lines_stop_as_soon_as_the_run_is_over(caplog):
    samples = [Sample(iteration=1, worker="local", user=1, started_at="t", ok=True, first_response_ms=120.0)]
    over = []
    with caplog.at_level(logging.INFO, logger="bootbench"):
        greenlet = progress.start(samples, planned=2, interval=0.01, ended=lambda: bool(over))
        gevent.sleep(0.05)
        while_running = [r.getMessage() for r in caplog.records]
        # the last iteration is accounted for: the run is over while Locust still winds down
        samples.append(Sample(iteration=2, worker="local", user=1, started_at="t", ok=True, first_response_ms=130.0))
        over.append(True)
        gevent.sleep(0.05)
        after = [r.getMessage() for r in caplog.records][len(while_running):]
        progress.stop(greenlet)
    assert while_running and all("1/2 iterations" in line for line in while_running)
    assert after == [], "no progress line after the run is over"
    assert greenlet.dead
