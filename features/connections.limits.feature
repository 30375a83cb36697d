Feature: The server ends a session or refuses one: the work in flight is lost, nothing else is disturbed
  A server protects itself: it ends a transaction left idle too long, it refuses a
  connection beyond its limit, and an administrator can end any session. The session
  ended loses the work of its open transaction, and only that, and the application
  carries on with a new connection. What the application is told depends on its driver:
  psycopg2 says only that the connection was lost (connection_lost), and the server
  states its reason in its log; psycopg 3 passes on the reason the server sent as it
  ended the session (admin_shutdown, idle_in_transaction_session_timeout).

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A transaction left idle longer than the server allows is ended with its session, and its work is lost

    Scenario: The server ends a transaction left idle, and its payment is lost
      Given the server ends a transaction of the application left idle for more than 0.20 seconds
      And the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      When the application leaves the transaction idle until the server ends its session
      And the application commits the transaction
      Then it fails because the connection was lost
      And it fails with connection_lost on psycopg2, idle_in_transaction_session_timeout on psycopg
      And the server's log gives the reason "terminating connection due to idle-in-transaction timeout"
      And no payment for dave is in the ledger

    Scenario: After the server ended a transaction left idle, the pool hands out a working connection
      Given the server ends a transaction of the application left idle for more than 0.20 seconds
      And the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      And the application has left the transaction idle until the server ended its session
      And the application's commit of that transaction has failed because the connection was lost
      When the application reads the ledger through the pool
      Then it succeeds

  Rule: Beyond the server's connection limit a new connection is refused with too_many_connections, and the connections already open keep working

    Scenario: With every connection taken, one more is refused
      Given the application is connected to the ledger
      And other clients hold every connection the server has left
      When the application opens one more connection
      Then it fails with too_many_connections

    Scenario: With every connection taken and one more refused, the connection already open keeps working
      Given the application is connected to the ledger
      And other clients hold every connection the server has left
      And the application has been refused one more connection
      When the application reads the ledger on the same connection
      Then it succeeds

    Scenario: Once the other clients let their connections go, the connection refused before is accepted
      Given the application is connected to the ledger
      And other clients hold every connection the server has left
      And the application has been refused one more connection
      And the other clients have let their connections go
      When the application opens one more connection
      Then it succeeds

  Rule: A session an administrator ends is lost to the application, and its next work runs on a new connection

    Scenario: An administrator ends a request that waits for a lock
      When T1 locks the account of alice
      And T2 locks the account of alice
      Then T2 is waiting for T1
      When an administrator ends T2's session
      Then T2 fails with connection_lost on psycopg2, admin_shutdown on psycopg
      And the server's log gives the reason "terminating connection due to administrator command"
      When T1 commits
      Then T1 completes
      # the application discards the dead connection and carries on with a new one
      When T2 rolls back
      And T2 reads the balance of bob
      Then T2 completes
