"""The generated workloads' transactions (failspec.harness.concurrency.generated), without a
server: a seed gives the same transactions every time, appends are unique and in key order,
keys retire, and the bank's check and the matrix say what they found."""

from decimal import Decimal

from failspec.harness.concurrency import cycles, generated


def drawn(make):
    return list(iter(make().next, None))


def test_a_seed_generates_the_same_list_append_transactions_every_time():
    first = drawn(lambda: generated.ListAppends(18, 500))
    assert first == drawn(lambda: generated.ListAppends(18, 500))
    assert first != drawn(lambda: generated.ListAppends(19, 500))
    assert len(first) == 500


def test_appends_are_unique_in_key_order_and_keys_retire():
    appends = [
        (key, value)
        for _, ops in drawn(lambda: generated.ListAppends(7, 2000))
        for kind, key, value in ops
        if kind == cycles.APPEND
    ]
    values = [number for _, (number, _) in appends]
    assert len(values) == len(set(values))
    per_key: dict[int, int] = {}
    for key, _ in appends:
        per_key[key] = per_key.get(key, 0) + 1
    assert max(per_key.values()) <= generated.APPENDS_PER_KEY
    assert len(per_key) > generated.ACTIVE_KEYS  # retired keys were replaced
    assert {form for _, (_, form) in appends} == set(generated.FORMS)
    for _, ops in drawn(lambda: generated.ListAppends(7, 2000)):
        keys = [key for kind, key, _ in ops if kind == cycles.APPEND]
        assert keys == sorted(keys)  # no two transactions wait for each other's locks


def test_a_seed_generates_the_same_bank_transactions_every_time():
    accounts = ["alice", "bob", "carol"]
    first = drawn(lambda: generated.BankOperations(18, 200, accounts))
    assert first == drawn(lambda: generated.BankOperations(18, 200, accounts))
    transfers = [t.transfer for t in first if t.transfer is not None]
    assert 50 < len(transfers) < 150
    assert all(source != target for source, target, _ in transfers)


def test_the_bank_check_finds_only_committed_reads_with_another_total():
    def read(id_, status=cycles.COMMITTED, **balances):
        values = {k: Decimal(v) for k, v in balances.items()}
        return generated.BankRecord(id_, "S1", None, status=status, balances=values)

    run = generated.Run("bank", "read committed", 1, 1)
    run.history = [
        read(1, alice="60.00", bob="40.00"),
        read(2, alice="50.00", bob="40.00"),
        read(3, cycles.ABORTED, alice="1.00", bob="1.00"),
    ]
    assert generated.check_bank(run, Decimal("100.00")) == [
        "S1's transaction 2 read alice 50.00, bob 40.00: total 90.00, not 100.00: it saw part "
        "of a transfer"
    ]


def test_the_matrix_keeps_what_ran_and_what_the_specification_says():
    matrix = generated.GeneratedMatrix(seed=5)
    assert generated.GeneratedMatrix().seed >= 0  # drawn when not given
    history = [cycles.Transaction(1, "S1", [(cycles.APPEND, 0, 1)])]
    history.append(cycles.Transaction(2, "S2", [], cycles.ABORTED, "serialization_failure"))
    run = generated.Run("list-append", "serializable", 5, 2, history=history)
    matrix.record(run, generated.findings(cycles.check(history)))
    matrix.expect("list-append", "serializable", "G2-item", generated.NEVER)
    row = matrix.as_json()["workloads"]["list-append"]["serializable"]
    assert matrix.as_json()["seed"] == 5
    assert (row["transactions"], row["committed"], row["aborted"]) == (
        2, 1, {"serialization_failure": 1},
    )  # fmt: skip
    assert row["anomalies"]["G2-item"] == {"expected": "never", "found": 0, "example": None}
    assert list(row["anomalies"]) == list(cycles.CLASSES)
