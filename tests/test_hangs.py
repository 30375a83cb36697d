"""The hang matrix's bounds, computed from the application's settings, and its cells."""

from __future__ import annotations

import json

import pytest

from failspec.harness.faults import hangs
from failspec.harness.faults.hangs import BOUNDS, Cell, HangMatrix, Settings


def settings(**changes: object) -> Settings:
    base = {
        "connect_timeout": 2.0, "tcp_user_timeout": 0.5, "keepalives": (1.0, 1.0, 2),
        "statement_timeout": 0.8, "lock_timeout": 0.5, "pool_timeout": 0.5, "deadline": None,
    }  # fmt: skip
    return Settings(**{**base, **changes})


def seconds(bound: str, **changes: object) -> float:
    return BOUNDS[bound].seconds(settings(**changes))


def test_keepalives_drop_a_dead_peer_after_idle_plus_interval_times_count():
    # libpq docs / tcp(7): the first probe after keepalives_idle, then one per interval.
    assert seconds("the TCP keepalives", tcp_user_timeout=None) == 1 + 1 * 2
    assert seconds("the TCP keepalives", tcp_user_timeout=None, keepalives=(2.0, 3.0, 3)) == 11


def test_a_tcp_user_timeout_overrides_the_keepalive_count():
    # tcp(7): TCP_USER_TIMEOUT overrides keepalive; Linux drops the connection at the first
    # probe time, after one unanswered probe, at which the user timeout has passed.
    assert seconds("the TCP keepalives") == 2.0
    assert seconds("the TCP keepalives", tcp_user_timeout=3.5) == 4.0


def test_the_tcp_user_timeout_counts_from_the_first_retransmission():
    assert seconds("the TCP user timeout") == pytest.approx(0.9)
    # A SYN is checked at its retransmissions: 1 s, 3 s, 7 s after the first (RFC 6298).
    assert seconds("the TCP user timeout on connecting") == 1.0
    assert seconds("the TCP user timeout on connecting", tcp_user_timeout=1.5) == 3.0
    assert seconds("the TCP user timeout, then again on reconnecting") == pytest.approx(1.9)


def test_a_bound_the_application_does_not_set_cannot_end_a_wait():
    with pytest.raises(AssertionError, match="request deadline"):
        seconds("the data layer's deadline")
    with pytest.raises(AssertionError, match="keepalives"):
        seconds("the TCP keepalives", keepalives=None)
    assert seconds("the data layer's deadline", deadline=0.5) == 0.5


@pytest.mark.parametrize(
    ("measured", "within"),
    [(1.6, True), (2.65, True), (1.59, False), (2.66, False)],
)
def test_a_cell_is_within_its_bound_when_measured_within_20_percent_and_a_lateness(
    measured, within
):
    cell = Cell.measure(BOUNDS["the connect timeout"], settings(), measured, "connect_timeout")
    assert cell.within is within
    assert "1.60-2.65 s" in cell.describe()


@pytest.mark.parametrize(
    ("scale", "measured", "within"),
    [(1, 0.85, True), (1, 0.86, False), (2, 1.1, True), (2, 1.11, False)],
)
def test_a_busy_machine_may_end_a_wait_later_by_a_lateness_times_the_timeout_scale(
    scale, measured, within
):
    # The pool timeout's 0.5 s: 20 % more, then 0.25 s times timeout_scale (hangs.LATENESS).
    pool = BOUNDS["the pool timeout"]
    assert Cell.measure(pool, settings(), measured, "x", scale=scale).within is within
    assert not Cell.measure(pool, settings(), 0.39, "x", scale=scale).within  # never earlier


def test_an_answer_at_once_is_one_under_half_a_second():
    at_once = BOUNDS["an answer at once"]
    assert Cell.measure(at_once, settings(), 0.49, "connection_lost").within
    assert not Cell.measure(at_once, settings(), 0.51, "connection_lost").within


def test_the_matrix_is_written_in_phase_and_silence_order_with_what_was_measured(tmp_path):
    matrix = HangMatrix()
    pool = BOUNDS["the pool timeout"]
    matrix.record(hangs.LOCK, hangs.CUT, Cell.measure(pool, settings(), 0.5, "pool_timeout"))
    matrix.record(hangs.OPENING, hangs.GONE, Cell.measure(pool, settings(), 0.6, "x"))
    matrix.record(hangs.OPENING, hangs.FROZEN, Cell.measure(pool, settings(), 0.4, "y"))
    matrix.write(tmp_path / "hang-matrix.json")
    written = json.loads((tmp_path / "hang-matrix.json").read_text())
    assert list(written) == [hangs.OPENING, hangs.LOCK]
    assert list(written[hangs.OPENING]) == [hangs.FROZEN, hangs.GONE]
    assert written[hangs.LOCK][hangs.CUT] == {
        "bound": "the pool timeout", "setting": "pool_timeout", "expected_s": 0.5,
        "measured_s": 0.5, "outcome": "pool_timeout", "within": True, "unbounded": False,
        "scenario": "", "late_s": 0.25,
    }  # fmt: skip


def test_every_phase_and_silence_has_a_name_the_steps_can_parse():
    assert len(set(hangs.PHASES)) == 6 and len(set(hangs.FAULTS)) == 6
    with pytest.raises(ValueError, match="no cell"):
        hangs.Hang(None, None, None, None, phase="somewhere", fault=hangs.CUT, timeout=1)


def test_a_cell_names_how_the_request_ended():
    import psycopg2

    assert hangs.outcome_of(None) == "succeeded"
    syn = psycopg2.OperationalError(
        'connection to server at "127.0.0.1", port 1 failed: Connection timed out\n\tIs the'
    )
    assert hangs.outcome_of(syn) == "network_timeout"
    assert hangs.outcome_of(psycopg2.OperationalError("timeout expired")) == "connect_timeout"
    assert hangs.outcome_of(psycopg2.OperationalError("odd")) == "unnamed: odd"


def test_the_longest_client_bound_is_the_last_of_the_settings_the_application_sets():
    # keepalives 1 s + 1 s x 2 (no user timeout) outlast the 2 s connect timeout.
    assert hangs.longest_client_bound(settings(tcp_user_timeout=None)) == (
        "the TCP keepalives",
        3.0,
    )
    # The data layer's deadline is not a client setting: it never counts, however long.
    assert hangs.longest_client_bound(settings(deadline=60.0))[1] == 2.0
    assert hangs.longest_client_bound(settings(keepalives=None, connect_timeout=5.0)) == (
        "the connect timeout",
        5.0,
    )
    nothing = dict.fromkeys(
        ("connect_timeout", "tcp_user_timeout", "keepalives", "statement_timeout",
         "lock_timeout", "pool_timeout"),
    )  # fmt: skip
    with pytest.raises(ValueError, match="sets nothing"):
        hangs.longest_client_bound(settings(**nothing))


def test_an_unbounded_cell_says_so_and_is_measured_against_the_deadline():
    deadline = BOUNDS["the data layer's deadline"]
    cell = Cell.measure(deadline, settings(deadline=2.5), 2.51, "deadline_exceeded",
                        unbounded=True)  # fmt: skip
    assert cell.unbounded and cell.within and cell.expected_s == 2.5
    assert cell.describe().startswith("unbounded by any client setting; ended after 2.51 s")
    assert not Cell.measure(deadline, settings(deadline=2.5), 2.51, "x").unbounded
