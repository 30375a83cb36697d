import pytest
from hamcrest import assert_that, is_not

from failspec.harness.matchers import (
    fails_with,
    message_mentions,
    reports_connection_invalidated,
    succeeds,
)
from failspec.harness.outcomes import Outcome
from tests.test_outcomes import wrapped


def failed(code: str, message: str = "duplicate key") -> Outcome:
    return Outcome("record", error=wrapped(message, code))


def test_fails_with_matches_the_named_condition_only():
    assert_that(failed("23505"), fails_with("unique_violation"))
    assert_that(failed("23505"), is_not(fails_with("check_violation")))


def test_a_mismatch_says_what_was_expected_and_what_happened():
    with pytest.raises(AssertionError) as caught:
        assert_that(failed("23505"), fails_with("deadlock_detected"))
    text = str(caught.value)
    assert "fails with deadlock_detected" in text
    assert "failed with unique_violation" in text


def test_a_success_is_not_a_failure():
    ok = Outcome("read", rows=[1])
    assert_that(ok, succeeds())
    assert_that(ok, is_not(fails_with("unique_violation")))
    with pytest.raises(AssertionError, match="succeeded"):
        assert_that(ok, fails_with("unique_violation"))


def test_message_mentions_shows_the_actual_message():
    outcome = failed("23505", 'violates unique constraint "transactions_client_ref_key"')
    assert_that(outcome, message_mentions("transactions_client_ref_key"))
    with pytest.raises(AssertionError, match="violates unique constraint"):
        assert_that(outcome, message_mentions("amount_positive"))


def test_invalidated_reads_sqlalchemys_flag():
    outcome = failed("57P01")
    assert_that(outcome, is_not(reports_connection_invalidated()))
    outcome.error.connection_invalidated = True
    assert_that(outcome, reports_connection_invalidated())
