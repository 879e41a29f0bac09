"""Running on Locust: a run's state on the master and its workers, kept apart from Locust's hooks.

Everything a process keeps for a run hangs off its Locust environment as one
:class:`~bootbench.run.harness.Harness` (``environment.bootbench``). Plain
classes with no Locust in them (unit-tested in tests/test_run_*.py):
``budget`` (the iteration budget), ``early_stop`` (the early-stop policy),
``master`` (the master's state for one run). The Locust glue: ``lifecycle``
(open, stop, close a run), ``messages`` (users <-> master), ``workers``
(the dead-worker watch), ``master_watch`` (a worker's watch on a silent
master), ``context`` (what users read), ``embedded`` (the
reference server's lifetime). :mod:`bootbench.events` calls them.
"""
