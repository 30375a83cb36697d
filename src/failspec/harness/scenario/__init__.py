"""The scenario: what one scenario works in, and what its steps use.

``workspace`` gives each scenario a schema of its own on the run's server (``Run``);
``fixtures`` holds what a scenario makes, as behave fixtures, and writes down the one
order it is closed in; ``application`` is the application under specification: its
engine and pool, its ledger, its request deadline and its retries; ``sessions`` are the
plain named sessions of a scenario; ``backoff`` the statistics of the retry's waits.
"""
