"""The cycle checker (failspec.harness.concurrency.cycles) on made-up list-append histories:
every class it reports, found where the history has it and not found where it has not.

Each history is written the way Elle's papers write them: T1 appends 1 to key 0, T2 reads
key 0 as [1] … A history's last transaction often reads every key, as the workload's
final read does, so that the order of every append is known."""

import time

import pytest

from failspec.harness.concurrency.cycles import (
    ABORTED,
    APPEND,
    CLASSES,
    COMMITTED,
    READ,
    Transaction,
    check,
)


def a(key, value):
    return (APPEND, key, value)


def r(key, *values):
    return (READ, key, list(values) if values else None)


def t(id_, *ops, status=COMMITTED):
    return Transaction(id_, f"S{id_}", list(ops), status)


def kinds(result):
    return {kind for kind in CLASSES if result.count(kind)}


# -- a history with nothing wrong ---------------------------------------------------------


def test_a_serial_history_shows_nothing():
    result = check(
        [
            t(1, a(0, 1), a(1, 1)),
            t(2, r(0, 1), a(0, 2), r(1, 1)),
            t(3, r(0, 1, 2), a(1, 2), r(1, 1, 2)),
            t(4, r(0, 1, 2), r(1, 1, 2)),
        ]
    )
    assert kinds(result) == set()
    assert result.committed == 4
    assert result.edges == {"ww": 2, "wr": 4, "rw": 1}  # T2 read key 1 before T3 appended


def test_the_longest_read_orders_a_key_and_reads_of_its_beginning_fit():
    result = check([t(1, a(0, 1)), t(2, a(0, 2)), t(3, r(0, 1)), t(4, r(0, 1, 2))])
    assert kinds(result) == set()
    # T3 read [1] before T2's append: T3 -rw-> T2; T1 -ww-> T2; T1 -wr-> T3, T2 -wr-> T4
    assert result.edges == {"ww": 1, "wr": 2, "rw": 1}


# -- G0: dirty write ------------------------------------------------------------------------


def test_g0_a_cycle_of_writes_only_is_found():
    # Key 0 says T1 before T2, key 1 says T2 before T1.
    result = check([t(1, a(0, 1), a(1, 2)), t(2, a(0, 3), a(1, 4)), t(3, r(0, 1, 3), r(1, 4, 2))])
    assert result.count("G0") == 1
    assert result.example("G0").transactions in ((1, 2, 1), (2, 1, 2))
    assert "appended" in result.example("G0").explanation
    assert "(ww)" in result.example("G0").explanation


def test_g0_writes_in_one_order_on_every_key_are_no_cycle():
    result = check([t(1, a(0, 1), a(1, 2)), t(2, a(0, 3), a(1, 4)), t(3, r(0, 1, 3), r(1, 2, 4))])
    assert result.count("G0") == 0


# -- G1a: aborted read -----------------------------------------------------------------------


def test_g1a_reading_a_rolled_back_append_is_found():
    history = [t(1, a(0, 1), status=ABORTED), t(2, r(0, 1))]
    history[0].condition = "serialization_failure"
    result = check(history)
    assert result.count("G1a") == 1
    assert "rolled back (serialization_failure)" in result.example("G1a").explanation


def test_g1a_an_aborted_transaction_reading_another_aborted_one_proves_nothing():
    result = check([t(1, a(0, 1), status=ABORTED), t(2, r(0, 1), status=ABORTED), t(3, r(0))])
    assert result.count("G1a") == 0


# -- G1b: intermediate read -----------------------------------------------------------------


def test_g1b_reading_a_version_its_writer_overwrote_before_commit_is_found():
    result = check([t(1, a(0, 1), a(0, 2)), t(2, r(0, 1)), t(3, r(0, 1, 2))])
    assert result.count("G1b") == 1
    assert "followed with 2" in result.example("G1b").explanation


def test_g1b_reading_a_writers_last_append_is_no_intermediate_read():
    result = check([t(1, a(0, 1), a(0, 2)), t(2, r(0, 1, 2))])
    assert result.count("G1b") == 0


# -- G1c: circular information flow ------------------------------------------------------


def test_g1c_each_reading_the_others_write_is_found():
    result = check([t(1, a(0, 1), r(1, 2)), t(2, a(1, 2), r(0, 1))])
    assert result.count("G1c") == 1
    assert result.count("G0") == 0
    assert "(wr)" in result.example("G1c").explanation


def test_g1c_reading_in_one_direction_only_is_no_cycle():
    result = check([t(1, a(0, 1)), t(2, r(0, 1), a(1, 2)), t(3, r(1, 2))])
    assert result.count("G1c") == 0


# -- G-single: read skew --------------------------------------------------------------------


def test_g_single_one_anti_dependency_in_a_cycle_is_found():
    # T2 reads key 0 before T1's append (rw T2 -> T1), and key 1 after it (wr T1 -> T2).
    result = check([t(1, a(0, 1), a(1, 2)), t(2, r(0), r(1, 2)), t(3, r(0, 1), r(1, 2))])
    assert result.count("G-single") == 1
    assert result.count("G2-item") == 0
    example = result.example("G-single").explanation
    assert "without 1, which T1 appended next (rw)" in example
    assert "(wr)" in example


def test_g_single_a_lost_update_is_one_anti_dependency():
    # T1 reads key 0 empty, T2 appends 1 and commits, T1 appends 2 after it (read committed).
    result = check([t(1, r(0), a(0, 2)), t(2, a(0, 1)), t(3, r(0, 1, 2))])
    assert result.count("G-single") == 1


def test_g_single_reads_of_one_snapshot_are_no_cycle():
    result = check([t(1, a(0, 1), a(1, 2)), t(2, r(0), r(1)), t(3, r(0, 1), r(1, 2))])
    assert result.count("G-single") == 0
    assert kinds(result) == set()


# -- G2-item: write skew ----------------------------------------------------------------------


def test_g2_item_each_missing_the_others_append_is_found():
    # PostgreSQL 18.4's report: T1 reads 632 empty and appends to 633; T2 the other way.
    result = check([t(1, r(632), a(633, 3)), t(2, r(633), a(632, 2)), t(3, r(632, 2), r(633, 3))])
    assert result.count("G2-item") == 1
    assert result.count("G-single") == 0
    example = result.example("G2-item")
    assert example.explanation.count("(rw)") == 2
    assert "T1 read key 632 as empty, without 2, which T2 appended next (rw)" in str(example)


def test_g2_item_a_serial_order_of_the_same_transactions_is_no_cycle():
    result = check(
        [t(1, r(632), a(633, 3)), t(2, r(633, 3), a(632, 2)), t(3, r(632, 2), r(633, 3))]
    )
    assert result.count("G2-item") == 0
    assert kinds(result) == set()


# -- internal consistency ------------------------------------------------------------------


def test_internal_a_transaction_not_seeing_its_own_append_is_found():
    result = check([t(1, a(0, 1), r(0))])
    assert result.count("internal") == 1
    assert "after appending 1 to it itself" in result.example("internal").explanation


def test_internal_a_list_that_shrinks_within_a_transaction_is_found():
    result = check([t(1, a(0, 1)), t(2, r(0, 1), r(0))])
    assert result.count("internal") == 1


def test_internal_a_later_read_may_see_more_committed_appends_at_read_committed():
    # A non-repeatable read is no internal inconsistency: the list grew, own append last.
    result = check([t(1, r(0), a(0, 2), r(0, 1, 2)), t(2, a(0, 1)), t(3, r(0, 1, 2))])
    assert result.count("internal") == 0


# -- incompatible orders -------------------------------------------------------------------


def test_incompatible_orders_reads_that_are_no_prefixes_are_found():
    result = check([t(1, a(0, 1)), t(2, a(0, 2)), t(3, r(0, 1, 2)), t(4, r(0, 2, 1))])
    assert result.count("incompatible-order") == 1
    assert "no one order of appends" in result.example("incompatible-order").explanation


def test_incompatible_orders_a_value_never_appended_or_read_twice_is_found():
    result = check([t(1, a(0, 1)), t(2, r(0, 1, 9)), t(3, r(1)), t(4, a(1, 5)), t(5, r(1, 5, 5))])
    assert result.count("incompatible-order") == 2


def test_incompatible_orders_prefixes_are_compatible():
    result = check([t(1, a(0, 1)), t(2, a(0, 2)), t(3, r(0)), t(4, r(0, 1)), t(5, r(0, 1, 2))])
    assert result.count("incompatible-order") == 0


# -- the checker itself -------------------------------------------------------------------


def test_a_value_appended_twice_is_refused():
    with pytest.raises(ValueError, match="appended to key 0 twice"):
        check([t(1, a(0, 1)), t(2, a(0, 1))])


def test_every_class_has_a_plain_name():
    assert set(CLASSES) == {
        "G0", "G1a", "G1b", "G1c", "G-single", "G2-item", "internal", "incompatible-order",
    }  # fmt: skip


def test_ten_thousand_transactions_are_checked_in_under_five_seconds():
    """The bench's figure, kept: a history as the workload makes it (four sessions, keys
    retired after 32 appends), with write skew in every hundredth pair."""
    history = []
    key, appended, value = 0, 0, 0
    lists: dict[int, list[int]] = {}
    for n in range(1, 10_001):
        if appended >= 32:
            key, appended = key + 1, 0
        value += 1
        if n % 100 == 0:  # each misses the other's append: G2-item
            history.append(t(n, r(key + 1000, *lists.get(key + 1000, [])), a(key + 2000, value)))
            value += 1
            history.append(t(-n, r(key + 2000, *lists.get(key + 2000, [])), a(key + 1000, value)))
            lists.setdefault(key + 2000, []).append(value - 1)
            lists.setdefault(key + 1000, []).append(value)
            continue
        history.append(t(n, r(key, *lists.get(key, [])), a(key, value)))
        lists.setdefault(key, []).append(value)
        appended += 1
    history.append(t(0, *(r(k, *v) for k, v in lists.items())))
    started = time.perf_counter()
    result = check(history)
    took = time.perf_counter() - started
    assert result.count("G2-item") == 100
    assert kinds(result) == {"G2-item"}
    assert took < 5.0, f"{took:.2f} s"
