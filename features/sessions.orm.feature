Feature: An ORM session that fails is unusable until rolled back, and never hides what broke it
  Applications that use SQLAlchemy's ORM work through a session. When writing its
  changes (a flush) fails, the session refuses all further work until the application
  rolls it back, so half-done work is never mistaken for done. Mistakes in using
  transactions are reported as such. The ledger's unit of work (an ORM session that
  commits at its end, or rolls back when anything in it fails) keeps all of its work or
  none of it, and tells the caller what broke it: a rule of the ledger, the application's
  own code, or a lost connection.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: After a failed flush, the session refuses all work until it is rolled back

    Scenario: A session whose flush failed refuses the next query as pending_rollback
      Given the application's session has failed to write a payment of 0.00 for dave
      When the application reads the ledger through its session
      Then it fails with pending_rollback

    @changes-ledger
    Scenario: A session that was rolled back after a failed flush works again
      Given the application's session has failed to write a payment of 0.00 for dave
      And the application has rolled its session back
      When the application writes a payment of 15.00 for erin through its session
      Then it succeeds
      And a payment of 15.00 for erin is in the ledger

  Rule: Amounts read through the session are exact to the cent

    Scenario: Amounts read through the session are the exact decimal amounts, never binary fractions
      When the application reads the ledger through its session
      Then it reads the amounts exactly: alice 100.00, bob 250.50, carol 75.25

  Rule: Beginning a transaction that is already begun is refused, never silently nested

    Scenario: Beginning the session's transaction a second time is refused
      Given the application's session has begun a transaction
      When the application begins a transaction on its session again
      Then it fails with invalid_request
      And the error message mentions "already begun"

    Scenario: Beginning a connection's transaction a second time is refused
      Given the application has begun a transaction
      When the application begins another transaction on the same connection
      Then it fails with invalid_request
      And the error message mentions "already"

  Rule: A unit of work keeps all of its work or none of it, and the caller is told what broke it

    Scenario: A unit of work whose second payment breaks a rule keeps none of its work and reports the rule
      Given the application has started a unit of work that writes a payment of 40.00 for dave
      When the unit of work also writes a payment of 0.00 for erin and commits
      Then it fails with check_violation
      And no payment for dave is in the ledger
      And the committed ledger is unchanged

    Scenario: A unit of work that the application's own code abandons keeps none of its work, and the caller gets the application's error
      Given the application has started a unit of work that writes a payment of 40.00 for dave
      When the application's own code fails before the unit of work ends
      Then it fails with application_error
      And no payment for dave is in the ledger
      And the committed ledger is unchanged

    @changes-ledger
    Scenario: A unit of work that ends without a failure keeps all of its work
      Given the application has started a unit of work that writes a payment of 40.00 for dave
      When the unit of work also writes a payment of 15.10 for erin and commits
      Then it succeeds
      And the books balance: dave 40.00, erin 15.10
      And the payments for dave and erin are pending

    # The failed COMMIT has already discarded the dead connection, so the rollback after
    # it has nothing left to fail on: the caller sees the commit's own error.
    Scenario: A unit of work whose connection the server ended reports the lost connection and keeps none of its work
      Given the application has started a unit of work that writes a payment of 40.00 for dave
      When the server ends that connection
      And the unit of work commits
      Then it fails because the connection was lost
      And no payment for dave is in the ledger

    Scenario: When the application's own code fails after the connection died, the caller gets the application's error, and the failed rollback is noted on it
      Given the application has started a unit of work that writes a payment of 40.00 for dave
      When the server ends that connection
      And the application's own code fails before the unit of work ends
      Then it fails with application_error
      And the error notes "the rollback failed too"
      And no payment for dave is in the ledger
