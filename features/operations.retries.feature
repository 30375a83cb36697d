Feature: A transient failure is retried a bounded number of times and never applies anything twice
  Some failures say "try again": PostgreSQL asks applications to retry a transaction
  that failed with serialization_failure or deadlock_detected, and a connection lost
  before the commit changed nothing. The ledger retries those, waiting a little longer
  each time (with a random part, so clients do not retry in step), up to a limit. It
  never retries a failure that would only repeat, and a retry never applies an
  operation twice.

  Background:
    Given the ledger holds the sample payments

  Rule: A transient failure is retried until the operation succeeds, and the money moves once

    @changes-ledger
    Scenario Outline: A payment that meets <failure> <times> time(s) is applied once, on attempt <attempts>
      Given the next <times> attempts to record an operation fail with <failure>
      When the application pays 40.00 to dave with reference ref-601
      Then it succeeds after <attempts> attempts
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

  Rule: Retries wait longer each time, with jitter, and stop at the limit

    @changes-ledger
    Scenario: Each wait between attempts is a random part of a limit that doubles
      Given the next 2 attempts to record an operation fail with serialization_failure
      When the application pays 40.00 to dave with reference ref-603
      Then it succeeds after 3 attempts
      And it waited twice, first at most 0.02 seconds, then at most 0.04 seconds

    Scenario: When the attempts run out, the caller gets the last failure
      Given the next 5 attempts to record an operation fail with serialization_failure
      When the application pays 40.00 to dave with reference ref-604
      Then it fails with serialization_failure after 3 attempts
      And no payment for dave is in the ledger

  Rule: A failure that would only repeat is never retried

    Scenario: A payment refused by a rule of the ledger is tried once
      When the application pays 0.00 to dave with reference ref-605
      Then it fails with check_violation after 1 attempt
      And no payment for dave is in the ledger
