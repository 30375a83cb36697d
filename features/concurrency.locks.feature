Feature: Waiting for a lock: how long a session waits, and what it is told when it gives up
  Two sessions of the application, T1 and T2, want the same account at the same time.
  A session that is changing an account holds a lock on it until its transaction ends;
  the second waits for the first to finish, unless it said how long it is willing to
  wait for a lock (lock_timeout: it then fails with lock_not_available), that it will
  not wait at all (NOWAIT: the same error at once), or how long any statement may take
  (statement_timeout: it is cancelled with query_canceled, whatever it was waiting for).
  Workers taking payments from a queue pass over those another worker holds (SKIP
  LOCKED), so each takes a different one.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A session waits for a held account until the holder finishes, then proceeds

    Scenario: The second session asking for an account proceeds once the first commits
      When T1 locks the account of alice
      And T2 locks the account of alice
      Then T2 is waiting for T1
      When T1 commits
      Then T2 completes

  Rule: A session with a lock timeout stops waiting after that time and fails with lock_not_available

    Scenario: A session with a lock timeout gives up waiting for a held account
      Given T2 gives up waiting for a lock after 0.10 seconds
      When T1 locks the account of alice
      And T2 locks the account of alice
      Then T2 is waiting for T1
      And T2 fails with lock_not_available after waiting 0.10 seconds

  Rule: A session that will not wait for a lock fails with lock_not_available at once

    Scenario: A session that does not wait is refused a held account at once
      When T1 locks the account of alice
      And T2 locks the account of alice without waiting
      Then T2 fails with lock_not_available without waiting

  Rule: A statement that waits for a lock longer than the statement timeout is cancelled with query_canceled

    Scenario: A session with a statement timeout is cancelled while it waits for a held account
      Given T2 gives up any statement after 0.10 seconds
      When T1 locks the account of alice
      And T2 locks the account of alice
      Then T2 is waiting for T1
      And T2 fails with query_canceled after waiting 0.10 seconds

  Rule: Workers that pass over payments another worker holds each claim a different payment, without waiting

    Scenario: Three workers claim three different pending payments at the same time
      Given the ledger also holds pending payments of 5.00 for dave and erin
      When T1 claims the next pending payment that no one else holds
      And T2 claims the next pending payment that no one else holds
      And T3 claims the next pending payment that no one else holds
      Then T1, T2 and T3 each hold a different payment
      And no session waited

    Scenario: Workers that do not pass over held payments queue behind the first
      When T1 claims the next pending payment
      And T2 claims the next pending payment
      Then T2 is waiting for T1

  Rule: Workers take pending payments oldest first, and a payment the application makes waits as pending until one takes it

    @changes-ledger
    Scenario: The oldest pending payment is claimed first, and the application's new payment is the next one claimed
      Given the application has paid 5.00 to dave with reference ref-021
      When T1 claims the next pending payment
      And T2 claims the next pending payment that no one else holds
      Then T1 holds the payment ref-003 and T2 holds the payment ref-021
