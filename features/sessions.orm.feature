Feature: An ORM session that fails is unusable until rolled back, and never hides what broke it
  Applications that use SQLAlchemy's ORM work through a session. When writing its
  changes (a flush) fails, the session refuses all further work until the application
  rolls it back, so half-done work is never mistaken for done. Mistakes in using
  transactions are reported as such, and when the connection dies the application is
  told that, not some error from cleaning up afterwards.

  Background:
    Given the ledger holds the sample payments

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

  Rule: When the connection dies, the caller gets the error that broke the work, not a rollback's

    Scenario: A unit of work whose connection the server ended reports the lost connection
      Given the application has started a unit of work that writes a payment of 40.00 for dave
      When the server ends that connection
      And the unit of work commits
      Then it fails because the connection was lost
      And no payment for dave is in the ledger
