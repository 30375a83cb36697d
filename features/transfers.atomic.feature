Feature: A transfer moves money completely or not at all
  A transfer takes money from one account (the first leg) and gives it to another (the
  second leg). Both legs happen in one transaction: whatever fails, and whenever, the
  two balances change together or not at all, and the total of all balances never
  changes.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A transfer changes both balances by the same amount, and never the total

    @changes-ledger
    Scenario: A transfer moves the amount from one balance to the other
      When the application transfers 30.00 from alice to bob with reference ref-401
      Then it succeeds
      And the balance of alice is 70.00
      And the balance of bob is 280.50
      And the total of all balances is unchanged

  Rule: A transfer that fails at any point leaves both balances as they were

    Scenario Outline: A transfer that fails <how> moves no money
      When the application transfers <amount> from <source> to <target> with reference ref-402
      Then it fails with <condition>
      And no balance has changed
      And the total of all balances is unchanged

      Examples:
        | how                                                  | amount | source | target | condition       |
        | on its first leg, because the source has too little  | 500.00 | carol  | dave   | check_violation |
        | on its first leg, because the source does not exist  | 30.00  | nobody | bob    | unknown_account |
        | on its second leg, because the target does not exist | 30.00  | alice  | nobody | unknown_account |
        | at its record, because the amount is not positive    | 0.00   | alice  | bob    | check_violation |

    Scenario: A transfer whose connection is lost between its legs moves no money
      Given the application does not retry
      And the connection will be lost between the legs of the next transfer
      When the application transfers 30.00 from alice to bob with reference ref-403
      Then it fails because the connection was lost
      And no balance has changed
      And the total of all balances is unchanged
