Feature: No failure changes committed payments unless it says so
  The ledger's fingerprint is the number of committed payments together with a
  checksum over every detail of every one of them: account, amount, reference,
  status and time. It is taken before a failure and compared after it. If a single
  cent, status or reference changed, the fingerprints differ.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: Every failure leaves the committed payments exactly as they were

    Scenario Outline: After <failure>, the ledger's fingerprint is unchanged
      When <failure>
      Then the committed ledger is unchanged

      Examples:
        | failure                                                  |
        | a payment with a negative amount is attempted            |
        | a payment with no account is attempted                   |
        | a payment with an unknown status is attempted            |
        | a payment reusing a committed reference is attempted     |
        | a query dividing every amount by zero is attempted       |
        | a transaction that changed every payment is rolled back  |
        | a transaction is cut off by the server before it commits |

  Rule: The fingerprint notices any change to committed payments

    # The cent is added to the payment alone: the books no longer balance either.
    @changes-ledger @expect-imbalance
    Scenario: A committed change of one cent changes the fingerprint
      When one cent is added to the payment ref-002 and committed
      Then the ledger's fingerprint has changed

    @changes-ledger
    Scenario: A committed change of status changes the fingerprint
      When the payment ref-003 is marked posted and committed
      Then the ledger's fingerprint has changed

    @changes-ledger
    Scenario: A committed new payment changes the fingerprint
      When the application records a payment of 15.00 for erin on its own
      Then the ledger's fingerprint has changed
