Feature: An operation that breaks a rule of the ledger is refused, names the rule, and moves no money
  The ledger's rules live in the database as named constraints: a reference is used
  once, money goes only to accounts that exist, amounts are positive, no balance goes
  below zero, and every payment names its account. An operation that breaks one is
  refused with the PostgreSQL condition and the name of the rule it broke, so the
  caller can tell the user exactly what was wrong; no balance and no payment changes.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A refused operation names the rule it broke, and changes nothing

    Scenario Outline: <attempt> is refused as <condition>, naming <rule>
      When the application attempts <attempt>
      Then it fails with <condition> naming <rule>
      And no balance has changed
      And the committed ledger is unchanged

      Examples:
        | attempt                                            | condition             | rule                          |
        | a payment reusing the reference of a committed one | unique_violation      | transactions_client_ref_key   |
        | a payment to an account that does not exist        | foreign_key_violation | transactions_account_fkey     |
        | a payment of zero                                  | check_violation       | transactions_amount_positive  |
        | a transfer of more than the source account holds   | check_violation       | accounts_balance_not_negative |
        | a payment that names no account                    | not_null_violation    | account                       |
