"""Entry point: ``python -m bootbench.server --port 0 [options]`` (see ``--help``), and the ``bootbench-server`` script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
