"""Entry point: ``python -m bootbench.server --port 0 [options]`` (see ``--help``), and the ``bootbench-server`` script."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

from .cli import main as serve_until_stopped


def main() -> NoReturn:
    """Run the server; after a clean shutdown leave the process at once (:func:`exit_now`)."""
    exit_now(serve_until_stopped())


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` without tearing the interpreter down.

    By the time the server's main returns, everything it writes is done: each ground-truth line was flushed as it
    was written and the file closed (``app.serve``), every session ended. What the interpreter would still do is
    free every object of aiohttp, socketio and numpy, a full garbage collection over them: 0.1 to 0.25 s of CPU
    that the launcher (``ReferenceServer.stop``, at the end of every embedded run) waits for. So: run the atexit
    handlers (a plugin protocol's included), flush stdout and stderr, and ``os._exit``. A thread still running
    (none of bootbench's protocols starts one) gets the ordinary exit, which waits for it.
    """
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()  # logging.shutdown among them: every handler flushed and closed
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
