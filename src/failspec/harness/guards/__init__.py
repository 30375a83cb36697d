"""Guards: what the harness checks after every scenario, whatever the scenario says.

Add a guard here. ``books`` reads the committed state in one statement (the integrity
fingerprint and every account's flows, for money conservation); ``audit`` keeps each
scenario's opening balances and reads the books with the harness's own SQL; ``leaks``
finds connections, transactions and pool checkouts a scenario left behind; ``metrics``
counts what the server did (commits, rollbacks, rows, connections) per scenario and run.
"""
