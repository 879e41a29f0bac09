"""Entry point: ``python -m bootbench.server --port 0 [options]`` (see ``--help``)."""

from .cli import main

raise SystemExit(main())
