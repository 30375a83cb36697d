"""The anomaly detectors decide from a history, never from the level: made-up histories."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from failspec.harness.concurrency import isolation
from failspec.harness.concurrency.isolation import History, Observation, judge

D = Decimal
INITIAL = {"dave": D("10.00"), "erin": D("20.00")}


class NoSessions(list):
    """Stands in for the sessions: none failed and none waited, unless told."""

    def __init__(self, failed: str | None = None, waited: bool = False) -> None:
        super().__init__()
        action = SimpleNamespace(waited_for=["T1"] if waited else [])
        self.append(SimpleNamespace(failed_with=lambda c: c == failed, actions=[action], name="T2"))


def observe(events: list[tuple], final: dict[str, Decimal], **sessions) -> Observation:
    history = History()
    for event in events:
        history.add(*event[:4], detail=event[4] if len(event) > 4 else None)
    return Observation(history, NoSessions(**sessions), INITIAL, final)  # type: ignore[arg-type]


def test_a_write_over_an_uncommitted_write_is_a_dirty_write():
    events = [
        ("T1", "write", "dave", D("11.00")),
        ("T2", "write", "dave", D("12.00")),  # before T1's COMMIT went out: no lock stopped it
        ("T1", "write", "erin", D("21.00")),
        ("T1", "commit_sent"), ("T1", "commit"),
        ("T2", "write", "erin", D("22.00")),
        ("T2", "commit_sent"), ("T2", "commit"),
    ]  # fmt: skip
    verdict = judge("dirty write (G0)", "x", observe(events, {"dave": D(12), "erin": D(22)}))
    assert verdict.verdict == isolation.ALLOWED


def test_the_same_writes_after_the_first_writer_ended_are_not_a_dirty_write():
    events = [
        ("T1", "write", "dave", D("11.00")),
        ("T1", "write", "erin", D("21.00")),
        ("T1", "commit_sent"), ("T1", "commit"),
        ("T2", "write", "dave", D("12.00")),  # the write that waited, recorded after
        ("T2", "write", "erin", D("22.00")),
        ("T2", "commit_sent"), ("T2", "commit"),
    ]  # fmt: skip
    observation = observe(events, {"dave": D(12), "erin": D(22)}, waited=True)
    assert str(judge("dirty write (G0)", "x", observation)).endswith(isolation.BY_WAIT)


def test_a_delete_that_did_not_match_the_readers_own_view_is_read_skew():
    read = ("T1", "read", "dave", D("10.00"))
    commit = [("T1", "commit_sent"), ("T1", "commit")]
    deleted_nothing = [read, ("T1", "delete", "x", [], {"v": D("20.00")}), *commit]
    deleted_erin = [read, ("T1", "delete", "x", ["erin"], {"v": D("20.00")}), *commit]
    anomaly = "read skew over a write predicate (G-single)"
    assert judge(anomaly, "x", observe(deleted_nothing, INITIAL)).verdict == isolation.ALLOWED
    assert judge(anomaly, "x", observe(deleted_erin, INITIAL)).verdict == isolation.PREVENTED


def test_write_skew_needs_both_to_commit_after_reading_the_others_row_unchanged():
    both = [
        ("T1", "read", "erin", D("20.00")), ("T2", "read", "dave", D("10.00")),
        ("T1", "write", "dave", D("11.00")), ("T2", "write", "erin", D("21.00")),
        ("T1", "commit_sent"), ("T1", "commit"), ("T2", "commit_sent"),
    ]  # fmt: skip
    final = {"dave": D(11), "erin": D(21)}
    anomaly = "write skew (G2-item)"
    assert judge(anomaly, "x", observe([*both, ("T2", "commit")], final)).verdict == "allowed"
    refused = observe(both, {"dave": D(11), "erin": D(20)}, failed="serialization_failure")
    assert str(judge(anomaly, "x", refused)).endswith(isolation.BY_ABORT)


def test_a_read_only_transaction_that_did_not_commit_proves_no_anomaly():
    events = [
        ("T1", "read", "erin", D("20.00")),
        ("T2", "write", "erin", D("25.00")), ("T2", "commit_sent"), ("T2", "commit"),
        ("T3", "read", "erin", D("25.00")),
        ("T1", "write", "dave", D("0.00")), ("T1", "commit_sent"), ("T1", "commit"),
    ]  # fmt: skip
    anomaly = "anti-dependency cycle of three transactions (G2)"
    final = {"dave": D(0), "erin": D(25)}
    assert judge(anomaly, "x", observe(events, final)).verdict == isolation.PREVENTED
    committed = [*events, ("T3", "commit_sent"), ("T3", "commit")]
    assert judge(anomaly, "x", observe(committed, final)).verdict == isolation.ALLOWED


def test_circular_flow_prevented_by_snapshots_says_so_even_if_a_commit_later_fails():
    events = [
        ("T1", "write", "dave", D("11.00")), ("T2", "write", "erin", D("22.00")),
        ("T1", "read", "erin", D("20.00")), ("T2", "read", "dave", D("10.00")),
        ("T1", "commit_sent"), ("T1", "commit"), ("T2", "commit_sent"),
    ]  # fmt: skip
    observation = observe(events, {"dave": D(11), "erin": D(20)}, failed="serialization_failure")
    verdict = judge("circular information flow (G1c)", "serializable", observation)
    assert str(verdict).endswith(isolation.BY_SNAPSHOT)
