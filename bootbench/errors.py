"""The one base class of the errors a user can cause, and the exit code they end a command with.

Bad options, an unreadable audio file, a malformed ``--check``, a path that
is not a result folder: each is a :class:`UserError` subclass raised where it
is found, and every entry point (Locust's ``init`` hook in
:mod:`bootbench.events`, :func:`bootbench.views.cli.main`) catches this one
type, writes ``bootbench: <sentence>`` to stderr and ends with
:data:`EXIT_CODE`. Library functions never exit.
"""

from __future__ import annotations

EXIT_CODE = 2
"""The exit code of a command refused for bad input (nothing started)."""


class UserError(Exception):
    """A mistake the user can fix; ``str()`` is the one sentence to show, and entry points exit with 2."""
