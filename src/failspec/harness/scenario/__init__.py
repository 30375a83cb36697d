"""The scenario: what one scenario works in, and what its steps use.

``workspace`` gives each scenario a schema of its own on the run's server (``Run``) and
registers what must be cleaned up; ``application`` is the application under
specification: its engine and pool, its ledger, its request deadline and its retries;
``sessions`` are the plain named sessions of a scenario; ``backoff`` the statistics of
the retry's waits.
"""
