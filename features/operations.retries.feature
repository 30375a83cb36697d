Feature: A transient failure is retried a bounded number of times and never applies anything twice
  Some failures say "try again". PostgreSQL's documentation (Concurrency Control,
  "Serialization Failure Handling") says applications must be prepared to retry a
  transaction that failed with serialization_failure (SQLSTATE 40001) and that it may be
  advisable to retry deadlock_detected (40P01): the transaction did nothing, and run again
  it may succeed. A connection lost before the commit, or refused while the server
  restarts or shuts down (cannot_connect_now, 57P03), is transient in the same way. The
  ledger retries those, waiting a little longer each time (with a random part, so clients
  do not retry in step), up to a limit, and a retry never applies an operation twice.
  Everything else is tried once: a refusal by the ledger's rules would only repeat, and a
  statement or lock wait cut short by the application's own timeout, or a connection
  refused at the server's connection limit, is not retried either, because retrying
  multiplies a bound the application or the administrator chose, and the limit would
  only refuse again.
  The number of attempts is counted twice: by the ledger, and by the waits the
  application recorded before its retries (N attempts wait N-1 times).

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A transient failure is retried until the operation succeeds, and the money moves once

    @changes-ledger
    Scenario Outline: A payment that meets <failure> <times> time(s) is applied once, on attempt <attempts>
      Given the next <times> attempts to record an operation fail with <failure>
      When the application pays 40.00 to dave with reference ref-601
      Then it succeeds after <attempts> attempts
      And the server was asked to record it <attempts> times
      And the balance of dave is 40.00
      And exactly one operation has the reference ref-601

      Examples:
        | failure               | times | attempts |
        | serialization_failure | 2     | 3        |
        | deadlock_detected     | 1     | 2        |
        | a lost connection     | 1     | 2        |

    @changes-ledger
    Scenario: A transfer whose connection is lost between its legs is retried and moves the money once
      Given the connection will be lost between the legs of the next transfer
      When the application transfers 30.00 from alice to bob with reference ref-602
      Then it succeeds after 2 attempts
      And the balance of alice is 70.00
      And the balance of bob is 280.50

    @server-control @changes-ledger
    Scenario: A payment that meets a crashed server refusing connections is retried until the server is back, and applied once
      Given the server will crash just before the next operation commits, and stay down until the ledger has waited twice
      When the application pays 15.00 to erin with reference ref-603
      Then it succeeds after 3 attempts
      And exactly one operation has the reference ref-603
      And the balance of erin is 15.00

    @server-control @changes-ledger
    Scenario: A payment that meets the server shutting down is retried once the server is back, and applied once
      Given another client is connected to the server
      And the server is shutting down, waiting for its clients to leave
      And the other client will leave while the ledger waits to retry, and the server will stop and start again
      When the application pays 15.00 to erin with reference ref-604
      Then it succeeds after 2 attempts
      And exactly one operation has the reference ref-604
      And the balance of erin is 15.00

  Rule: When the attempts run out, the caller gets the last failure

    Scenario: A payment that meets serialization_failure more often than the ledger tries fails after 3 attempts
      Given the next 5 attempts to record an operation fail with serialization_failure
      When the application pays 40.00 to dave with reference ref-605
      Then it fails with serialization_failure after 3 attempts
      And the error notes "gave up after 3 attempts"
      And the server was asked to record it 3 times
      And no payment for dave is in the ledger

  Rule: Each wait before a retry is a random draw between zero and a limit that doubles from 20 ms and stops growing at 500 ms

    # The waits are recorded, not slept: 240 of them take no time.
    Scenario: 40 payments that fail 7 times each wait at random below the limit for each failure
      Given the application tries each operation up to 7 times
      And every attempt to record an operation fails with serialization_failure
      When the application makes 40 payments of 1.00 to dave
      Then each of them fails with serialization_failure after 7 attempts
      And each wait lies between zero and the limit for the failure it follows
        | failure | limit (s) |
        | 1       | 0.02      |
        | 2       | 0.04      |
        | 3       | 0.08      |
        | 4       | 0.16      |
        | 5       | 0.32      |
        | 6       | 0.50      |
      And on average the waits after each failure come to between 0.3 and 0.7 of its limit
      And the waits after each failure are not all the same

  Rule: A failure that would only repeat is never retried

    Scenario Outline: A payment refused for <refusal> fails with <condition> on its only attempt
      When the application pays <amount> to <account> with reference <reference>
      Then it fails with <condition> after 1 attempt
      And no payment for <account> is in the ledger

      Examples:
        | refusal                                 | amount | account | reference | condition             |
        | an amount of nothing                    | 0.00   | dave    | ref-606   | check_violation       |
        | an account that does not exist          | 40.00  | oscar   | ref-607   | foreign_key_violation |
        | a reference alice's payment already has | 40.00  | dave    | ref-001   | reference_conflict    |

  Rule: A failure at a limit the application or the administrator set is never retried

    Scenario: A payment cancelled by the application's statement timeout is tried once, though a second attempt would succeed
      Given the server gives up any statement of the application after 0.10 seconds
      And only the first attempt to record an operation is slow, taking the server 2.00 seconds
      When the application pays 40.00 to dave with reference ref-608
      Then it fails with query_canceled after 1 attempt
      And no payment for dave is in the ledger

    Scenario: A payment that gives up waiting for a lock another session holds is tried once
      Given the server gives up any lock wait of the application after 0.10 seconds
      And T1 has locked the account of dave
      When the application pays 40.00 to dave with reference ref-609
      Then it fails with lock_not_available after 1 attempt
      And no payment for dave is in the ledger

    Scenario: A payment refused a connection at the server's connection limit is tried once
      Given other clients hold every connection the server has left
      When the application pays 40.00 to dave with reference ref-610
      Then it fails with too_many_connections after 1 attempt
      And no payment for dave is in the ledger
