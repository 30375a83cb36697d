"""The ledger's tables and their named constraints.

Constraint names are part of the contract: a violation names the constraint it broke,
and the specification says which one. (A NOT NULL constraint is named here too, but a
violation of it is reported with the column's name and no constraint name, also on
PostgreSQL 18.6: measured here.)

* ``accounts``: one row per account, with its balance, which may never go negative.
* ``transactions``: one row per ledger operation, identified by the client's reference:
  a *payment* credits ``account``; a *transfer* moves ``amount`` from ``account`` to
  ``counterparty``.
"""

STATUSES = ("pending", "posted", "reversed")
KINDS = ("payment", "transfer")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


ACCOUNTS_DDL = """
CREATE TABLE accounts (
    name     text CONSTRAINT accounts_pkey PRIMARY KEY,
    balance  numeric(12, 2) NOT NULL DEFAULT 0
             CONSTRAINT accounts_balance_not_negative CHECK (balance >= 0)
)
"""

TRANSACTIONS_DDL = f"""
CREATE TABLE transactions (
    id            bigint GENERATED ALWAYS AS IDENTITY
                  CONSTRAINT transactions_pkey PRIMARY KEY,
    kind          text NOT NULL DEFAULT 'payment'
                  CONSTRAINT transactions_kind_allowed CHECK (kind IN ({_in(KINDS)})),
    account       text CONSTRAINT transactions_account_not_null NOT NULL
                  CONSTRAINT transactions_account_fkey REFERENCES accounts (name),
    counterparty  text CONSTRAINT transactions_counterparty_fkey REFERENCES accounts (name),
    amount        numeric(12, 2) NOT NULL
                  CONSTRAINT transactions_amount_positive CHECK (amount > 0),
    client_ref    text NOT NULL
                  CONSTRAINT transactions_client_ref_key UNIQUE,
    status        text NOT NULL DEFAULT 'pending'
                  CONSTRAINT transactions_status_allowed CHECK (status IN ({_in(STATUSES)})),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transactions_transfer_has_counterparty
        CHECK ((kind = 'transfer') = (counterparty IS NOT NULL))
)
"""

DDL = (ACCOUNTS_DDL, TRANSACTIONS_DDL)
