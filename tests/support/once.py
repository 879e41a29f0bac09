"""A shared run made once for the whole test session, however many pytest-xdist workers ask for it.

A session-scoped fixture is per process: under ``make test``'s four workers, a run that many tests read (a batch
of providers' ground-truth runs, every protocol's fault matrix) was made by every worker that got one of its
tests, up to four times the same 15 to 20 s. :func:`once` makes it in the first worker that asks, under a lock in
the folder every worker's temporary folder lies in, and hands the others what it made (pickled). It is
pytest-xdist's own recipe ("Making session-scoped fixtures execute only once"). Without xdist (``worker_id``
``master``) it simply makes it.

What is handed over must not depend on the process that made it: plain records and the paths of files it wrote
(the files stay where they are until pytest clears old temporary folders, sessions later).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock


def once(tmp_path_factory: Any, worker_id: str, key: str, make: Callable[[], Any]) -> Any:
    """What ``make()`` returns, made by the first worker of the session to ask for ``key`` and read by the rest."""
    if worker_id == "master":
        return make()
    shared = Path(tmp_path_factory.getbasetemp()).parent   # popen-gwN's parent: one per session, every worker's
    made = shared / f"once-{key}.pickle"
    with FileLock(str(shared / f"once-{key}.lock")):
        if made.is_file():
            return pickle.loads(made.read_bytes())
        value = make()
        made.write_bytes(pickle.dumps(value))
        return value
