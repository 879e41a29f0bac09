"""The contract between a reference server process and its launcher (the protocol constants it shares with
the drivers are in :mod:`bootbench.wire`)."""

API_KEY_ENV = "BOOTBENCH_SERVER_API_KEY"
"""Environment variable that carries the server's only accepted key (kept out of the process list)."""
LISTENING_PREFIX = "bootbench reference server listening on "
"""The line the server prints on stdout once it accepts connections, followed by its URL (and, after a
wildcard bind such as 0.0.0.0, a note saying so)."""
