"""Run a bench client's users in threads over one shared iteration budget and write their rows.

Shared by ``raw_client.py`` (greenlets after gevent's patching, or OS threads)
and ``wire_client.py`` (OS threads); it imports nothing that patches.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator


def run_users(user: Callable[..., None], args: tuple, users: int, iterations: int, out_path: str) -> None:
    """Start ``users`` threads of ``user(*args[:1], tickets, out, *args[1:])``, join them, write ``out_path``.

    ``tickets`` hands out iteration numbers 1..``iterations`` across all users;
    ``out`` is the list each user appends one dict per iteration to.
    """
    counter = itertools.count(1)
    lock = threading.Lock()

    def tickets() -> Iterator[int]:
        while True:
            with lock:
                n = next(counter)
            if n > iterations:
                return
            yield n

    out: list = []
    url, *rest = args
    threads = [threading.Thread(target=user, args=(url, tickets(), out, *rest), daemon=True) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    with open(out_path, "w") as f:
        for row in sorted(out, key=lambda r: r["iteration"]):
            f.write(json.dumps(row) + "\n")
