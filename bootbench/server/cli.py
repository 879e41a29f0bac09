"""Command line of the reference server: ``python -m bootbench.server --port 0 [options]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from . import protocols
from .config import (DEFAULT_COLD_PENALTY_MS, DEFAULT_FIRST_AUDIO_DELAY, DEFAULT_HOST, DEFAULT_REPLY_AFTER,
                     DEFAULT_REPLY_MS, DEFAULT_SETUP_DELAY, DEFAULT_WARM_FIRST_AUDIO_DELAY, REPLY_AFTER, ServerConfig)
from .constants import API_KEY_ENV
from .faults import SPEC_HELP as FAULT_HELP
from .faults import FaultNotPlayable, FaultPlan, FaultSpec, parse_fault, served_forms
from .latency import Delay, parse_delay

PROG = "python -m bootbench.server"


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a user error as one line on stderr and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _delay(spec: str) -> Delay:
    try:
        return parse_delay(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fault(spec: str) -> FaultSpec:
    try:
        return parse_fault(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(kind: Callable[[str], float], minimum: float, what: str) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum:g}")
        return value
    convert.__name__ = what
    return convert


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its defaults are the server's defaults)."""
    p = _OneLineParser(prog=PROG, description="bootbench's embedded reference speech-to-speech server. "
                       "Delays are a number of ms, uniform:LOW:HIGH, normal:MEAN:SD or lognormal:MEDIAN:SIGMA.")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    p.add_argument("--port", type=_number(int, 0, "a port number"), default=0,
                   help="port to bind; 0 picks a free one (default 0)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help=f"the only accepted key (prefer the {API_KEY_ENV} environment variable; "
                   "default: any non-empty key)")
    p.add_argument("--tls-cert", metavar="PEM", default=None,
                   help="serve https:// and wss:// with this certificate chain (with --tls-key; default: plain)")
    p.add_argument("--tls-key", metavar="PEM", default=None, help="the private key of --tls-cert")
    p.add_argument("--ground-truth", metavar="FILE.jsonl", default=None,
                   help="append one JSON line per finished session to this file")
    p.add_argument("--setup-delay", type=_delay, default=DEFAULT_SETUP_DELAY, metavar="SPEC",
                   help="delay from capacity slot to session_ready (default %(default)s)")
    p.add_argument("--first-audio-delay", type=_delay, default=DEFAULT_FIRST_AUDIO_DELAY, metavar="SPEC",
                   help="delay from the end of the user's turn to the first audio (Aivoco: from the first "
                   "audio_data unless --reply-after end-of-turn) (default %(default)s)")
    p.add_argument("--warm-first-audio-delay", type=_delay, default=DEFAULT_WARM_FIRST_AUDIO_DELAY, metavar="SPEC",
                   help="the same delay for the warm turns of a session (turn 2 and later: input after the previous "
                   "reply ended) (default %(default)s)")
    p.add_argument("--cold-penalty", type=_number(float, 0, "a number of ms"), default=DEFAULT_COLD_PENALTY_MS,
                   metavar="MS", help="extra setup delay of the first session of the process (default %(default)g)")
    p.add_argument("--capacity", type=_number(int, 0, "an integer"), default=0, metavar="N",
                   help="concurrent sessions served; more queue FIFO (default 0 = unlimited)")
    p.add_argument("--reply-ms", type=_number(int, 1, "an integer"), default=DEFAULT_REPLY_MS, metavar="MS",
                   help="length of each reply, streamed in 40 ms chunks (default %(default)s)")
    p.add_argument("--reply-after", choices=REPLY_AFTER, default=DEFAULT_REPLY_AFTER,
                   help="Aivoco only: start the first-audio delay at the first audio_data, or at the end of the "
                   "user's turn (500 ms of silence after speech, or no audio for that long) (default %(default)s; "
                   "OpenAI and Gemini always answer at the end of the turn their protocol defines)")
    p.add_argument("--leading-silence-ms", type=_delay, default=None, metavar="SPEC",
                   help="start each reply with this much low-level noise (-70 dBFS) before its audible part, "
                   "as services that pad replies do (default: none)")
    p.add_argument("--greeting-ms", type=_delay, default=None, metavar="SPEC",
                   help="greet unasked: a short reply this long after the session is ready, without any input "
                   "(an answer starting meanwhile cuts it short) (default: no greeting)")
    p.add_argument("--vad-needs-speech", action="store_true",
                   help="where the server ends the turn itself (OpenAI server VAD, Gemini automatic activity "
                   "detection, Aivoco, which this switches to --reply-after end-of-turn), answer only audio "
                   "that is speech-like, so a pure tone is never answered")
    p.add_argument("--fault", type=_fault, action="append", default=[], metavar="KIND[:OPTION=VALUE]...",
                   help=f"inject a fault into chosen sessions (repeatable; the first that strikes a session wins): "
                   f"{FAULT_HELP}; e.g. error:type=rate_limit_exceeded:every=5, drop:when=mid_reply:at=3,7, "
                   "slow:phase=audio:ms=2100:rate=0.1")
    p.add_argument("--socketio-path", default="/socket.io/", metavar="PATH",
                   help="where the Aivoco protocol's Socket.IO endpoint is served, e.g. /voice/socket.io/ for a "
                   "service behind a path prefix (default %(default)s)")
    p.add_argument("--seed", type=_number(int, 0, "an integer"), default=0, metavar="N",
                   help="seed of the delay draws and of fault rates (default 0)")
    p.add_argument("--parent-pid", type=_number(int, 1, "a process id"), default=None, metavar="PID",
                   help="shut down when this parent process is gone")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="stderr log level (default %(default)s)")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> tuple[ServerConfig, str]:
    """Parse the command line (exits 2 on a user error) into a config and the log level."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # every protocol of the table must be able to play what it is asked to (faults.FaultPlan.check)
        table = protocols.factories()
    except protocols.ProtocolError:
        table = None  # a plugin's protocol clashes or does not load: serve() says so as a startup error
    try:
        if table is not None:
            FaultPlan(args.fault, forms=served_forms(table))
    except FaultNotPlayable as exc:
        parser.error(f"argument --fault: {exc}")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    config = ServerConfig(host=args.host, port=int(args.port), api_key=api_key, ground_truth=args.ground_truth,
                          setup_delay=args.setup_delay, first_audio_delay=args.first_audio_delay,
                          warm_first_audio_delay=args.warm_first_audio_delay,
                          cold_penalty_ms=float(args.cold_penalty), capacity=int(args.capacity),
                          reply_ms=int(args.reply_ms), reply_after=args.reply_after, seed=int(args.seed),
                          parent_pid=None if args.parent_pid is None else int(args.parent_pid),
                          faults=tuple(args.fault), leading_silence=args.leading_silence_ms,
                          greeting=args.greeting_ms, vad_needs_speech=bool(args.vad_needs_speech),
                          socketio_path=args.socketio_path, tls_cert=args.tls_cert, tls_key=args.tls_key)
    return config, args.log_level


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; returns the process exit code."""
    config, level = config_from_args(argv)  # --help and a bad argument exit here, before aiohttp is imported
    from .app import StartupError, serve

    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if "--api-key" in (sys.argv if argv is None else argv):
        logging.getLogger("bootbench.server").warning(
            "--api-key shows in the process list; pass the key in %s instead", API_KEY_ENV)
    try:
        asyncio.run(serve(config))
    except StartupError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0
