@network
Feature: The network to the database fails: a payment is recorded once or not at all, never twice
  Between the application and the database there is a network, and it fails: every
  connection is cut at once, a connection is cut in the middle of a reply, the reply to
  a COMMIT never arrives, the network goes silent, or it is slow. In each case the
  question is the same: was the payment recorded once, not at all, or twice? The answer
  must always be "once" or "not at all", and the application must be told which, or be
  able to find out by the payment's reference.
  
  Which setting protects which phase: opening a connection is bounded by the connect
  timeout; a request sent into a network gone silent (no packet gets through, either way),
  by how long the application lets the network leave it unacknowledged (the TCP user
  timeout), which bounds only data left unacknowledged: a network that accepts but never
  answers acknowledges everything, and there no client setting bounds a request in
  flight (network.hangs.feature has every phase). The server's work on a statement is
  bounded by the statement timeout. The statement timeout counts from when the
  server receives the statement until it has sent the reply: a slow network delays a
  small reply without counting against it, but a large reply that a slow reader cannot
  take in does count, because the server waits to send it.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A connection the network cut while it was idle fails once, and the ledger's retry applies the operation once on a new connection

    @changes-ledger
    Scenario: The first use of a connection the network cut while idle fails; the retry records the payment once
      Given the application uses a pool that hands out connections untested
      And the pool holds one idle connection
      When the network cuts every connection
      And the application pays 15.00 to erin with reference ref-701
      Then it succeeds after 2 attempts
      And exactly one operation has the reference ref-701
      And the balance of erin is 15.00

  Rule: A payment whose request the silent network swallowed is retried once the network is back, and applied once

    # Whatever the driver calls the failure (here the TCP user timeout), a connection the
    # data layer had to discard is a reason to try again: the reference keeps it once.
    @changes-ledger
    Scenario: A payment sent into a silent network fails at the TCP user timeout, and the retry records it once
      Given the application gives up on a request the network has not acknowledged after 0.5 seconds
      And the application uses a pool that hands out connections untested
      And the pool holds one idle connection
      And the network will recover while the ledger waits to retry
      When the network to the database goes silent
      And the application pays 15.00 to erin with reference ref-704
      Then it succeeds after 2 attempts
      And exactly one operation has the reference ref-704
      And the balance of erin is 15.00

  Rule: A connection cut in the middle of a reply gives the reader an error, never a partial list of payments

    Scenario: A read cut off in the middle of its reply fails, and the next read returns every payment
      Given the ledger also holds 200 small payments to dave
      And the application uses a pool that hands out connections untested
      And the pool holds one idle connection
      And the network will cut the connection in the middle of the next reply
      When the application reads the ledger through the pool
      Then it fails because the connection was lost
      When the network recovers
      And the application reads the ledger through the pool
      Then it succeeds
      And it reads 203 payments

  Rule: When the reply to COMMIT is lost the application cannot know whether it committed; the ledger's retry finds the payment by its reference and never applies it twice

    @changes-ledger
    Scenario: The reply to a payment's COMMIT is lost; the retry finds the payment committed and does not apply it again
      Given the network will lose the reply to the next commit, and recover while the ledger waits to retry
      When the application pays 15.00 to erin with reference ref-702
      Then it succeeds after 2 attempts, reporting the operation as already applied
      And exactly one operation has the reference ref-702
      And the balance of erin is 15.00

    @changes-ledger
    Scenario: Without a retry, a lost commit reply looks like a failure although the payment was recorded: look it up by its reference before paying again
      Given the application does not retry
      And the network will lose the reply to the next commit
      When the application pays 15.00 to erin with reference ref-703
      Then it fails because the connection was lost
      And exactly one operation has the reference ref-703
      And the balance of erin is 15.00

  Rule: A silent network fails each phase within the bound of the setting that protects it, instead of hanging

    Scenario: Connecting over a network that accepts but never answers fails at the connect timeout
      Given the application's connect timeout is 2 seconds
      When the network to the database accepts connections but never answers
      And the application reads the ledger through the pool
      Then it fails with connect_timeout
      And it fails within 3 seconds

    Scenario: A read sent into a silent network fails once the network has left it unacknowledged for the set time
      Given the application gives up on a request the network has not acknowledged after 0.5 seconds
      And the pool holds one idle connection
      When the network to the database goes silent
      And the application reads the ledger through the pool
      Then it fails with network_timeout
      And it fails within 2 seconds

  Rule: The statement timeout counts until the server has sent the reply: a slow network delaying a small reply does not count, a reply the network cannot take in does

    Scenario: A slow network does not count against the statement timeout
      Given the server gives up any statement of the application after 0.20 seconds
      And the pool holds one idle connection
      And the network delays every reply by 0.30 seconds
      When the application reads the ledger through the pool
      Then it succeeds
      And it took at least 0.30 seconds

    Scenario: A statement the server needs longer for than the statement timeout is cancelled, also over a slow network
      Given the server gives up any statement of the application after 0.20 seconds
      And the pool holds one idle connection
      And the network delays every reply by 0.30 seconds
      When the application runs a report the server needs 0.5 seconds for
      Then it fails with query_canceled

    Scenario: A large export that a stalled network cannot take in is cancelled by the statement timeout
      Given T1 gives up any statement after 0.20 seconds
      When T1 starts an export of 60 MB of ledger data
      And the network stalls for 0.8 seconds
      Then T1 fails with query_canceled
