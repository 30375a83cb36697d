Feature: Two transfers that wait for each other: a deadlock, and how the ledger avoids or survives it
  T1 and T2 are two sessions of the application, each making a transfer at the same
  time. A transfer takes its first leg (the debit) and then its second (the credit);
  here each is held between its legs until the scenario lets it continue, so the order
  of events is exact. When each transfer holds the account the other needs next, they
  wait for each other for ever: PostgreSQL notices after a while (its deadlock_timeout)
  and ends one of them with deadlock_detected, whose work is undone, so the other can
  finish. The ledger retries the one that was ended; better still, it takes the locks
  of both accounts in one order (by name), so the second transfer simply waits. That is
  what the ledger does unless a scenario says it locks a transfer's source first.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory
    And T1 and T2 pause their next transfer between its legs

  Rule: When two transactions wait for each other, PostgreSQL ends exactly one of them with deadlock_detected and the other completes

    @changes-ledger
    Scenario: Two opposite transfers that each lock their source first deadlock: one is ended, the other completes
      Given the ledger locks a transfer's source account first
      And the sessions' ledger does not retry
      And T1 waits 0.10 seconds on a lock before it checks for a deadlock
      And T2 waits 0.10 seconds on a lock before it checks for a deadlock
      When T1 transfers 10.00 from alice to bob with reference ref-501
      And T2 transfers 20.00 from bob to alice with reference ref-502
      And T1 continues its transfer
      Then T1 is waiting for T2
      When T2 continues its transfer
      Then exactly one of T1 and T2 fails with deadlock_detected, and the other completes
      And the total of all balances is unchanged

  Rule: Of two deadlocked transactions, the one whose deadlock check comes first is the one ended

    @changes-ledger
    Scenario: The transaction that checks for the deadlock first is the one ended
      Given the ledger locks a transfer's source account first
      And the sessions' ledger does not retry
      And T1 waits 5.0 seconds on a lock before it checks for a deadlock
      And T2 waits 0.05 seconds on a lock before it checks for a deadlock
      When T1 transfers 10.00 from alice to bob with reference ref-501
      And T2 transfers 20.00 from bob to alice with reference ref-502
      And T1 continues its transfer
      And T2 continues its transfer
      Then T2 fails with deadlock_detected
      And T1's transfer succeeds after 1 attempt
      And the books balance: alice 90.00, bob 260.50

  Rule: The ledger retries the transfer a deadlock ended, and each transfer is applied exactly once

    @changes-ledger
    Scenario: The transfer ended by a deadlock succeeds on its second attempt
      Given the ledger locks a transfer's source account first
      And T1 waits 5.0 seconds on a lock before it checks for a deadlock
      And T2 waits 0.05 seconds on a lock before it checks for a deadlock
      And T2 waits to retry its transfer until told to
      When T1 transfers 10.00 from alice to bob with reference ref-501
      And T2 transfers 20.00 from bob to alice with reference ref-502
      And T1 continues its transfer
      And T2 continues its transfer
      Then T2 is waiting to retry its transfer
      And T1's transfer succeeds after 1 attempt
      When T2 retries its transfer
      Then T2's transfer succeeds after 2 attempts
      And exactly one operation has the reference ref-501
      And exactly one operation has the reference ref-502
      And the books balance: alice 110.00, bob 240.50

  Rule: A ledger that locks both accounts of a transfer in one order never deadlocks: the second transfer waits for the first

    @changes-ledger
    Scenario: Two transfers in opposite directions that lock in one order queue instead of deadlocking
      When T1 transfers 10.00 from alice to bob with reference ref-501
      And T2 transfers 20.00 from bob to alice with reference ref-502
      Then T2 is waiting for T1
      When T1 continues its transfer
      Then T1's transfer succeeds after 1 attempt
      When T2 continues its transfer
      Then T2's transfer succeeds after 1 attempt
      And no session failed with deadlock_detected
      And the books balance: alice 110.00, bob 240.50

    @changes-ledger
    Scenario: Two transfers into one account from different accounts queue instead of deadlocking
      When T1 transfers 10.00 from alice to bob with reference ref-503
      And T2 transfers 20.00 from carol to bob with reference ref-504
      Then T2 is waiting for T1
      When T1 continues its transfer
      Then T1's transfer succeeds after 1 attempt
      When T2 continues its transfer
      Then T2's transfer succeeds after 1 attempt
      And no session failed with deadlock_detected
      And the books balance: alice 90.00, bob 280.50, carol 55.25

    @changes-ledger
    Scenario: Two opposite transfers that both wait for a third session still queue instead of deadlocking
      Given the sessions' ledger does not retry
      When T3 locks the account of alice
      And T1 transfers 10.00 from alice to bob with reference ref-505
      And T2 transfers 20.00 from bob to alice with reference ref-506
      And T3 commits
      And T1 continues its transfer
      And T2 continues its transfer
      Then T1's transfer succeeds after 1 attempt
      And T2's transfer succeeds after 1 attempt
      And no session failed with deadlock_detected
      And the books balance: alice 110.00, bob 240.50
