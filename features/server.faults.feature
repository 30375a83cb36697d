@server-control
Feature: The database server crashes, restarts or is paused: no committed payment is lost, none is applied twice
  The server can stop at any moment: a crash (its processes killed, no shutdown), a
  restart, or a pause (its processes frozen, connections left open, nothing answers,
  while its machine still accepts and acknowledges).
  What the server confirmed as committed survives a crash; what was not yet committed
  is gone. The application's pool reconnects, and an operation that was interrupted is
  retried and applied exactly once. These scenarios run only against a test server the
  suite controls; elsewhere they are skipped, saying why.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A crash keeps every committed payment and loses the transaction that was open

    @changes-ledger
    Scenario: A crash with a transaction open keeps the committed payments and loses the open one
      Given the application has paid 25.00 to frank with reference ref-601
      And the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      When the server crashes and is restarted
      Then a payment of 25.00 for frank is in the ledger
      And no payment for dave is in the ledger

  Rule: After a crash and restart the application works again, without being restarted itself

    @changes-ledger
    Scenario: After a crash with a transaction open, the application's next payment succeeds
      Given the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      And the server has crashed and been restarted
      When the application pays 15.00 to erin with reference ref-602
      Then it succeeds
      And a payment of 15.00 for erin is in the ledger

  Rule: An operation the server's crash interrupts is retried when the server is back, and applied exactly once

    @changes-ledger
    Scenario: The server crashes just before a payment commits; the retry applies it once
      Given the server will crash just before the next operation commits, and be restarted while the ledger waits to retry
      When the application pays 15.00 to erin with reference ref-603
      Then it succeeds after 2 attempts
      And exactly one operation has the reference ref-603
      And the balance of erin is 15.00

  # Only opening a connection is bounded here: the pool is empty. A request on a connection
  # already open (the pool's test of an idle connection, a statement, COMMIT) waits for as
  # long as the freeze lasts, unbounded by any client setting (network.hangs.feature).
  Rule: While the server is paused, opening a new connection fails at the connect timeout; once it resumes, reads succeed

    Scenario: A paused server makes opening a new connection fail at the connect timeout, and the next read after it resumes succeeds
      Given the application's connect timeout is 2 seconds
      And the application uses a pool that tests each connection before handing it out
      When the server is paused
      And the application reads the ledger through the pool
      Then it fails with connect_timeout
      And it fails within 3 seconds
      When the server resumes
      And the application reads the ledger through the pool
      Then it succeeds
