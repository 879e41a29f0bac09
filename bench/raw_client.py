"""The baseline: the bootbench cycle in a few lines of python-socketio, no Locust, no bootbench driver.

    python bench/raw_client.py URL --users 10 --iterations 200 --out raw.jsonl [--threads]

Same library (python-socketio client, websocket transport), same payloads,
same cycle (start_call -> session_ready -> audio_data -> first audio_response
-> stop_call -> session_ended -> 100 ms wait), one connection per user, timestamps
(``time.perf_counter_ns()``) taken first thing in the event handlers. By
default the process is gevent monkey-patched exactly as Locust patches its
processes, so the users are greenlets; ``--threads`` uses plain OS threads
instead. One JSON line per iteration: ``sid`` (the Socket.IO session id the
server records), ``first_response_ms``, ``session_start_ms``; with
``--kernel-stamps`` also ``ready`` and ``audio``: ``kernel``, ``read`` and
``handler`` instants of the two timed messages (see ``kernel_stamps.py``).
"""

import sys

if "--threads" not in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import socketio  # noqa: E402

from bootbench.audio import Stimulus  # noqa: E402
from user_threads import run_users  # noqa: E402

START = {"auth_key": "bootbench-reference", "system_message": "", "voice_choice": "female", "custom_functions": []}


kernel_stamps = None


def user(url: str, tickets, out: list, wait_s: float, library_defaults: bool = False) -> None:
    # bootbench's transport option (see bootbench/providers/aivoco.py); message dispatch is the library's own.
    sio = socketio.Client(reconnection=False, handle_sigint=False,
                          websocket_extra_options={} if library_defaults else {"skip_utf8_validation": True})
    stamps: dict = {}
    ready, audio, ended = threading.Event(), threading.Event(), threading.Event()

    def on_ready(data=None):
        stamps.setdefault("ready", time.perf_counter_ns())
        ready.set()

    def on_audio(data=None):
        stamps.setdefault("audio", time.perf_counter_ns())
        audio.set()

    sio.on("session_ready", on_ready)
    sio.on("audio_response", on_audio)
    sio.on("session_ended", lambda data=None: ended.set())
    sio.connect(url, transports=["websocket"])
    sid = sio.get_sid("/")
    chunk = Stimulus.sine().chunks()[0]
    audio_msg = {"audio_data": chunk.base64, "has_audio": chunk.has_audio, "max_amplitude": chunk.peak}
    for iteration in tickets:
        if kernel_stamps is not None:
            kernel_stamps.take(sio)
        stamps.clear()
        for event in (ready, audio, ended):
            event.clear()
        sent = time.perf_counter_ns()
        sio.emit("start_call", START)
        ok = ready.wait(10)
        if ok:
            sio.emit("audio_data", audio_msg)
            ok = audio.wait(10)
        sio.emit("stop_call")
        ended.wait(3)
        out.append({"iteration": iteration, "sid": sid, "ok": ok,
                    "session_start_ms": (stamps["ready"] - sent) / 1e6 if "ready" in stamps else None,
                    "first_response_ms": (stamps["audio"] - stamps["ready"]) / 1e6 if ok else None})
        if kernel_stamps is not None:
            seen = kernel_stamps.first_of_each(kernel_stamps.take(sio))
            for name in ("ready", "audio"):
                out[-1][name] = {**seen.get(name, {"kernel": None, "read": None}), "handler": stamps.get(name)}
        time.sleep(wait_s)
    threading.Thread(target=sio.disconnect, daemon=True).start()


def main() -> None:
    global kernel_stamps
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--wait-ms", type=float, default=100.0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", action="store_true", help="plain OS threads (default: gevent greenlets)")
    parser.add_argument("--library-defaults", action="store_true",
                        help="websocket-client's defaults (UTF-8 validation of every text frame in pure Python)")
    parser.add_argument("--kernel-stamps", action="store_true",
                        help="also record kernel arrival stamps of the timed messages (bench/kernel_stamps.py)")
    args = parser.parse_args()
    if args.kernel_stamps:
        import kernel_stamps as module

        module.install()
        kernel_stamps = module
    run_users(user, (args.url, args.wait_ms / 1000, args.library_defaults), args.users, args.iterations, args.out)

if __name__ == "__main__":
    main()
