Feature: A connection that cannot be made, or is lost, fails clearly and is replaced
  Before an application can record a payment it needs a connection. Connecting can be
  refused, the server can be unreachable, and a connection can be ended by the server
  at any time. Each failure is reported clearly and quickly, and the application's
  connection pool never hands out a connection the server has ended.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A connection the server refuses names the reason

    @password-auth
    Scenario Outline: Connecting with <problem> is refused as <condition>
      When the application connects with <problem>
      Then it fails with <condition>

      Examples:
        | problem                        | condition            |
        | a wrong password               | invalid_password     |
        | a user that does not exist     | invalid_password     |
        | a database that does not exist | invalid_catalog_name |

  Rule: When nothing answers, connecting fails within the connect timeout instead of hanging

    Scenario: Connecting where nothing listens fails at once
      When the application connects to an address where nothing listens
      Then it fails with connection_refused
      And it fails within 1 second

    Scenario: Connecting where nothing ever answers fails when the connect timeout runs out
      Given the application's connect timeout is 2 seconds
      When the application connects to an address that accepts but never answers
      Then it fails with connect_timeout
      And it fails within 3 seconds

  Rule: A pooled connection that the server has ended is never handed out broken

    Scenario: A pool that tests connections replaces one the server ended while it was idle
      Given the application uses a pool that tests each connection before handing it out
      And the pool holds one idle connection
      When the server ends that connection
      And the application reads the ledger through the pool
      Then it succeeds
      And it was served by a new server connection

    Scenario: A pool that does not test connections fails once on one the server ended, then recovers
      Given the application uses a pool that hands out connections untested
      And the pool holds one idle connection
      When the server ends that connection
      And the application reads the ledger through the pool
      Then it fails because the connection was lost
      When the application reads the ledger through the pool
      Then it succeeds
      And it was served by a new server connection

    Scenario: A connection the server ends during a transaction loses that transaction
      Given the application uses a pool that tests each connection before handing it out
      And the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      When the server ends that connection
      And the application commits the transaction
      Then it fails because the connection was lost
      And no payment for dave is in the ledger

    Scenario: After the server ended a connection during a transaction, the pool hands out a working one
      Given the application uses a pool that tests each connection before handing it out
      And the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      And the server has ended that connection
      And the application's commit of that transaction has failed because the connection was lost
      When the application reads the ledger through the pool
      Then it succeeds
