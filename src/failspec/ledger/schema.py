"""The ledger's table and its named constraints.

Constraint names are part of the contract: a violation names the constraint it broke,
and the specification says which one. (A NOT NULL constraint is named here too; servers
before PostgreSQL 18 accept the name but do not record it, and report the column.)
"""

STATUSES = ("pending", "posted", "reversed")

TRANSACTIONS_DDL = f"""
CREATE TABLE transactions (
    id          bigint GENERATED ALWAYS AS IDENTITY
                CONSTRAINT transactions_pkey PRIMARY KEY,
    account     text CONSTRAINT transactions_account_not_null NOT NULL,
    amount      numeric(12, 2) NOT NULL
                CONSTRAINT transactions_amount_positive CHECK (amount > 0),
    client_ref  text NOT NULL
                CONSTRAINT transactions_client_ref_key UNIQUE,
    status      text NOT NULL DEFAULT 'pending'
                CONSTRAINT transactions_status_allowed
                CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""
