"""Parallel runs of the specification: ``./run-spec --jobs N`` runs the selected
scenarios on N behave processes (workers) at once, ``--shard K/N`` runs the K-th of N
deterministic shares (one per CI job); either way one merged record and one set of
reports come out, as if the run had been serial.

* :mod:`failspec.parallel.split`: which scenarios each worker or shard runs (balanced by
  the last run's durations, deterministic);
* :mod:`failspec.parallel.selection`: the scenarios behave's command line selects;
* :mod:`failspec.parallel.workers`: starting the workers, relaying their output, passing
  signals on, and merging their reports (failspec.report.partitions).

Each worker is a whole behave run with its own server (its before_all starts one, as a
serial run does): scenarios that crash, pause or restart the server, fill its
``max_connections`` or cut its network never reach another worker's scenario.
"""
