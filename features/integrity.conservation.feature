Feature: Money is never created, lost or moved without a record
  Every account's balance must equal the money it opened with, plus the payments into it,
  plus the transfers into it, minus the transfers out of it, as the ledger's own records
  of its operations say. This is double-entry bookkeeping's rule, and the books are
  checked against it after every scenario of this specification, whatever the scenario
  is about: a lost update, a transfer that took the money but never gave it, or a
  balance changed behind the ledger's back fails the scenario in which it happened.
  The scenarios below break the rule on purpose, to show that the check finds it.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: After the ledger's operations, every balance is what its records give

    @changes-ledger
    Scenario: After payments and transfers, every balance is its opening balance plus what moved in, minus what moved out
      Given the application has paid 40.00 to dave with reference ref-801
      And the application has transferred 30.00 from alice to dave with reference ref-802
      When the application transfers 50.00 from dave to erin with reference ref-803
      Then it succeeds
      And the books balance: alice 70.00, dave 20.00, erin 50.00

  Rule: A balance that changes without a record, or a record without its balance, is found

    @changes-ledger @expect-imbalance
    Scenario: A payment changed after it was recorded, its balance left alone, unbalances the books
      When one cent is added to the payment ref-002 and committed
      Then the books do not balance for bob: it holds 250.50, but its records give 250.51

    @changes-ledger @expect-imbalance
    Scenario: A balance changed with no operation to record it unbalances the books
      When 10.00 is added to the balance of dave with no record of it, and committed
      Then the books do not balance for dave: it holds 10.00, but its records give 0.00

    @changes-ledger @expect-imbalance
    Scenario: A transfer recorded with only its debit applied unbalances the books
      When a transfer of 30.00 from alice to bob is recorded with only its debit applied, and committed
      Then the books do not balance for bob: it holds 250.50, but its records give 280.50
