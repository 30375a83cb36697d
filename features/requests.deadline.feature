Feature: A request deadline: each attempt of a payment waits for the database no longer than the application chose
  Some silences no connection setting can end. A server that is frozen (its processes
  stopped, as when the machine under it is paused) still has its network acknowledge
  every request, and so does a network that takes requests in but never delivers them:
  the connect timeout only covers opening a connection, the TCP user timeout and the
  keepalives only notice a network that stops acknowledging, and the statement timeout
  is the server's own, which a frozen server never applies. The application's request
  deadline bounds each attempt of a payment or a transfer, and each read through the
  pool, in every wait on the database: opening a connection, the pool's test of an idle
  one, each statement, and the reply to COMMIT. It does not bound waiting for a free
  connection from the pool (the pool timeout does), nor a whole operation: each retry
  has a deadline of its own, so three attempts may take three deadlines. When it runs
  out, the attempt fails with deadline_exceeded and its connection is thrown away.
  
  A COMMIT that got no reply in time may have been carried out or not: the application
  is told that the outcome is unknown, and the ledger's retry looks the payment up by its
  reference, so it is applied exactly once; if the retries fail too, the error still
  says the outcome is unknown. A deadline that runs out before anything was sent (while
  the connection opens) is retried too.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: With the server frozen, a read fails at the request deadline, also when the pool first tests its idle connection

    @server-control
    Scenario: The pool's test of its idle connection to a frozen server ends at the request deadline
      Given the application's connect timeout is 2 seconds
      And the application gives up on a request the network has not acknowledged after 0.5 seconds
      And the application gives up on any request the database has not answered within 1 second
      And the application uses a pool that tests each connection before handing it out
      And the pool holds one idle connection
      When the server is paused
      And the application reads the ledger through the pool
      Then it fails with deadline_exceeded
      And it fails within 1.5 seconds

  Rule: A request whose deadline runs out while its connection opens is retried like a lost connection, with a deadline of its own

    # A frozen server's machine still accepts the connection; the server never answers it.
    # The deadline ends the attempt before the connect timeout would; the driver reports no
    # lost connection then, yet nothing was sent, so the ledger tries again.
    @server-control @changes-ledger
    Scenario: A payment that cannot open its connection before the deadline is retried once the server resumes, and recorded once
      Given the application's connect timeout is 10 seconds
      And the application gives up on any request the database has not answered within 1 second
      And the server is paused, and will resume while the ledger waits to retry
      When the application pays 15.00 to erin with reference ref-1203
      Then it succeeds after 2 attempts
      And its first attempt failed with deadline_exceeded
      And exactly one operation has the reference ref-1203
      And the balance of erin is 15.00

  Rule: A COMMIT that gets no reply within the deadline has an unknown outcome; the retry finds the payment by its reference and never applies it twice

    @network @changes-ledger
    Scenario: The network stops answering as a payment commits; the retry finds it applied once
      Given the application gives up on any request the database has not answered within 1 second
      And the network will take in the next commit without answering, and recover while the ledger waits to retry
      When the application pays 15.00 to erin with reference ref-1201
      Then it succeeds after 2 attempts, reporting the operation as already applied
      And exactly one operation has the reference ref-1201
      And the balance of erin is 15.00
      And the connection that ran out of time was thrown away at once, never given back to the pool

    @network
    Scenario: A payment whose COMMIT got no reply, and whose retries then ran out of time too, fails saying its outcome is unknown
      Given the application gives up on any request the database has not answered within 1 second
      And the network will take in the next commit without answering
      When the application pays 15.00 to erin with reference ref-1204
      Then it fails with deadline_exceeded, saying the payment may or may not have been applied
      And it fails with deadline_exceeded after 3 attempts

    @network
    Scenario: Without a retry, a payment whose COMMIT got no reply fails at the deadline, saying its outcome is unknown
      Given the application gives up on any request the database has not answered within 1 second
      And the application does not retry
      And the network will take in the next commit without answering
      When the application pays 15.00 to erin with reference ref-1202
      Then it fails with deadline_exceeded, saying the payment may or may not have been applied
      And it fails within 1.5 seconds
      And the connection that ran out of time was thrown away at once, never given back to the pool
