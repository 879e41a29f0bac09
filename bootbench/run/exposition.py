"""Where a harness's Prometheus metrics go: ``/metrics`` on the web UI or ``--metrics-port``, the push at the end.

One :class:`Exposition` per harness holds its own ``CollectorRegistry`` (no
registry in module globals: two environments in one process never share
metrics) with one :class:`~bootbench.views.prometheus.RunCollector`. The
master (or the single local process) serves it

- on the web UI's port, at ``<web-base-path>/metrics``, when the UI runs
  (behind ``--web-login`` like the UI's own pages);
- on ``--metrics-port`` (off by default), bound to ``--web-host``'s address
  as the web UI would be: the place a headless run is scraped;

and keeps serving the last run's final numbers until the process exits: a
headless run keeps its process up ``--metrics-linger`` seconds more after
the summary, so a scrape after the run still sees them. ``--pushgateway``
pushes them once at the end of a headless run (prometheus_client's push,
grouped by job and provider); a push that fails is one warning on stderr,
never a lost result or another exit code.

    exposition.install(environment, harness.current_or_last)
    exposition.serve("127.0.0.1", 9646)          # raises ConfigError when the port cannot be had
    exposition.push("http://gw:9091", job="bootbench", provider="aivoco")  # None, or the warning
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

import gevent
from flask import make_response, request
from gevent.pywsgi import WSGIServer
from locust.runners import MasterRunner
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import basic_auth_handler, choose_encoder, default_handler, push_to_gateway

from bootbench.options import ConfigError
from bootbench.providers.network import redacted_url
from bootbench.run.workers import live_workers
from bootbench.secrets import redact, register
from bootbench.views.prometheus import ObservedRun, RunCollector

log = logging.getLogger("bootbench")

METRICS_PATH = "/metrics"
PUSH_TIMEOUT_S = 10.0
"""How long the push at the end may take before it is given up (one warning)."""


@dataclass(eq=False)
class Exposition:
    """One harness's metrics registry, the endpoints serving it, and the push at the end of a run."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=False))
    collector: RunCollector | None = None
    server: WSGIServer | None = None
    """The ``--metrics-port`` server, while it serves."""
    published: bool = False
    """The end of the process was handled (the push, the linger): once."""

    def install(self, environment: Any, current_run: Callable[[], ObservedRun | None]) -> None:
        """Register the collector of ``current_run`` (once), and ``/metrics`` on the web UI when it runs."""
        if self.collector is None:
            runner = environment.runner
            self.collector = RunCollector(
                current_run, users=lambda: runner.user_count,
                workers=(lambda: len(live_workers(runner))) if isinstance(runner, MasterRunner) else lambda: 0)
            self.registry.register(self.collector)
        web_ui = getattr(environment, "web_ui", None)
        if web_ui is not None:
            base = (getattr(environment.parsed_options, "web_base_path", "") or "").rstrip("/")
            view = web_ui.auth_required_if_enabled(self._flask_view)
            web_ui.app.add_url_rule(base + METRICS_PATH, "bootbench_prometheus_metrics", view)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for (text format by default, OpenMetrics if asked), and its
        content type; keys are masked as in every output."""
        encoder, content_type = choose_encoder(accept or "")
        return redact(encoder(self.registry).decode()).encode(), content_type

    def _flask_view(self) -> Any:
        body, content_type = self.exposition(request.headers.get("Accept"))
        return make_response(body, 200, {"Content-Type": content_type})

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """The ``--metrics-port`` server: ``/metrics`` (any other path: 404)."""
        if environ.get("PATH_INFO", "/").rstrip("/") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"bootbench serves its metrics at /metrics\n"]
        body, content_type = self.exposition(environ.get("HTTP_ACCEPT"))
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def serve(self, host: str, port: int) -> str:
        """Serve ``/metrics`` on ``host``:``port`` (``*`` or empty: every interface); the URL it serves at.

        Raises :class:`ConfigError` when the port cannot be had (in use, not allowed).
        """
        bind = "" if host in ("*", "") else host
        server = WSGIServer((bind, port), self.wsgi_app, log=None, error_log=log)
        try:
            server.start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)  # gevent's strerror carries the address too
            raise ConfigError(f"--metrics-port {port} cannot be used on {host or '*'} ({reason.lower()}); "
                              "choose another port") from None
        self.server = server
        shown = f"[{bind}]" if ":" in bind else (bind or "0.0.0.0")
        return f"http://{shown}:{server.server_port}{METRICS_PATH}"

    def linger(self, seconds: float) -> None:
        """Keep serving for ``seconds`` (a headless run's ``--metrics-linger``); a SIGINT or SIGTERM cuts it short."""
        if self.server is None or seconds <= 0:
            return
        sys.stderr.write(f"bootbench: serving the final metrics on port {self.server.server_port} "
                         f"for {seconds:g} s more (--metrics-linger)\n")
        sys.stderr.flush()
        try:
            gevent.sleep(seconds)
        except KeyboardInterrupt:  # the signal handler of run.lifecycle throws it into this (the main) greenlet
            pass

    def stop(self) -> None:
        """Stop the ``--metrics-port`` server (the web UI's route ends with the web UI)."""
        if self.server is not None:
            self.server.stop(timeout=1)
            self.server = None

    def push(self, url: str, *, job: str, provider: str) -> str | None:
        """Push the registry to the Pushgateway at ``url`` (grouped by ``job`` and ``provider``); None when it went
        through, else the one-sentence warning (written to stderr too). Never raises.

        Credentials in the URL (``https://user:password@gw``) go as HTTP basic
        auth and are masked in every output; the URL shown has none.
        """
        gateway, username, password = split_credentials(url)
        if password:
            register(password)
        handler = default_handler
        if username is not None:
            def handler(url: str, method: str, timeout: float | None, headers: list, data: bytes) -> Callable:
                return basic_auth_handler(url, method, timeout, headers, data, username, password)
        try:
            push_to_gateway(gateway, job=job, registry=self.registry, grouping_key={"provider": provider},
                            timeout=PUSH_TIMEOUT_S, handler=handler)
        except Exception as exc:  # a failed push must cost the run nothing: no traceback, same exit code
            reason = redact(str(getattr(exc, "reason", None) or exc)).strip() or type(exc).__name__
            warning = (f"the push to the Pushgateway at {redacted_url(url)} failed ({reason}); "
                       f"the run's results are in its folder as usual")
            sys.stderr.write(f"bootbench: warning: {warning}\n")
            sys.stderr.flush()
            return warning
        log.info("metrics pushed to the Pushgateway at %s (job %s, provider %s)", redacted_url(url), job, provider)
        return None


def split_credentials(url: str) -> tuple[str, str | None, str]:
    """``url`` without ``user:password@``, and the user (None when there is none) and password."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, ""
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), unquote(username), unquote(password)
