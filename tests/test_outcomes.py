import psycopg2
import pytest
import sqlalchemy.exc

from failspec.conditions import CONDITION_NAMES, condition_of, is_known_condition
from failspec.harness.outcomes import Outcome, capture


class FakeServerError(psycopg2.Error):
    """psycopg2's errors take pgcode from the server; a subclass lets a test set it."""

    def __init__(self, message: str, pgcode: str | None) -> None:
        super().__init__(message)
        self._code = pgcode

    @property
    def pgcode(self):  # type: ignore[override]
        return self._code


def wrapped(message: str, pgcode: str | None = None) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("SELECT 1", None, FakeServerError(message, pgcode))


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("23505", "unique_violation"),
        ("40P01", "deadlock_detected"),
        ("40001", "serialization_failure"),
        ("25P02", "in_failed_sql_transaction"),
        ("42601", "syntax_error"),
        ("57014", "query_canceled"),
    ],
)
def test_a_server_error_is_named_by_its_postgresql_condition(code, name):
    assert CONDITION_NAMES[code] == name
    assert condition_of(wrapped("whatever", code)) == name


@pytest.mark.parametrize(
    ("message", "name"),
    [
        ('FATAL:  password authentication failed for user "x"', "invalid_password"),
        ('FATAL:  database "nope" does not exist', "invalid_catalog_name"),
        ("FATAL:  sorry, too many clients already", "too_many_connections"),
        ("failed: Connection refused\n\tIs the server running on that host", "connection_refused"),
        ("failed: timeout expired", "connect_timeout"),
        ("server closed the connection unexpectedly", "connection_lost"),
        # libpq's error for a multi-host string lists each host's: the server that
        # answered but accepts no writes names it, not the other host's timeout.
        (
            'connection to server at "127.0.0.1", port 1 failed: timeout expired\n'
            'connection to server at "127.0.0.1", port 2 failed: session is read-only',
            "read_only_session",
        ),
    ],
)
def test_a_connection_failure_without_sqlstate_is_named_from_postgresql_message(message, name):
    assert condition_of(wrapped(message)) == name


def test_an_unrecognised_failure_without_sqlstate_has_no_name():
    assert condition_of(wrapped("something new")) is None


def test_a_pool_timeout_has_a_client_side_name():
    assert condition_of(sqlalchemy.exc.TimeoutError("QueuePool limit")) == "pool_timeout"


def test_names_in_feature_files_are_checked_against_the_known_ones():
    assert is_known_condition("deadlock_detected")
    assert is_known_condition("connect_timeout")
    assert not is_known_condition("deadlock")


def test_capture_keeps_the_error_instead_of_raising_it():
    error = wrapped("boom", "22012")

    def fail():
        raise error

    outcome = capture("divide", fail)
    assert outcome.error is error
    assert outcome.condition == "division_by_zero"
    assert "division_by_zero" in outcome.describe()


def test_capture_does_not_swallow_a_bug_in_the_suite():
    with pytest.raises(ZeroDivisionError):
        capture("oops", lambda: 1 / 0)


def test_capture_keeps_rows_or_a_value():
    assert capture("read", lambda: [1, 2]).rows == [1, 2]
    assert capture("count", lambda: 7).value == 7
    assert Outcome("x", rows=[]).succeeded
