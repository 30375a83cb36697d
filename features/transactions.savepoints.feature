Feature: A savepoint lets part of a transaction fail without losing the rest
  Inside a transaction, a savepoint marks a point to go back to. When a step after it
  fails, only the work since the savepoint is undone, and the transaction can go on
  and commit everything else. Without one, a single failure loses the whole
  transaction. An import uses this to take the valid rows of a file and say why it
  refused the others.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A failure under a savepoint undoes only the work since the savepoint

    @changes-ledger
    Scenario: A failed payment under a savepoint is undone alone, and the transaction commits the rest
      Given the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      And a payment of 0.00 for erin under a savepoint has failed with check_violation
      When the application records a payment of 15.00 for frank in that transaction
      And the application commits the transaction
      Then a payment of 40.00 for dave is in the ledger
      And a payment of 15.00 for frank is in the ledger
      And no payment for erin is in the ledger

  Rule: Releasing a savepoint keeps its work; rolling back to it discards only that work

    @changes-ledger
    Scenario: The work under a released savepoint is committed with the transaction
      Given the application has begun a transaction
      And the application has set a savepoint
      And the application has recorded a payment of 15.00 for erin in that transaction
      When the application releases the savepoint
      And the application commits the transaction
      Then a payment of 15.00 for erin is in the ledger

    @changes-ledger
    Scenario: Rolling back to a savepoint discards only the payments made after it
      Given the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      And the application has set a savepoint
      And the application has recorded a payment of 15.00 for erin in that transaction
      When the application rolls back to the savepoint
      And the application commits the transaction
      Then a payment of 40.00 for dave is in the ledger
      And no payment for erin is in the ledger

  Rule: An import takes every row or none, or takes the valid rows and says why it refused each other one

    Scenario: An all-or-nothing import with an invalid row imports nothing and names the row
      When the application imports these payments all or nothing:
        | account | amount | reference |
        | dave    | 40.00  | ref-301   |
        | erin    | 0.00   | ref-302   |
        | frank   | 15.00  | ref-303   |
        | nobody  | 5.00   | ref-304   |
      Then it fails with check_violation
      And the failure says it was row 2 (ref-302)
      And the committed ledger is unchanged

    @changes-ledger
    Scenario: An all-or-nothing import whose rows are all valid imports every row and credits each account
      When the application imports these payments all or nothing:
        | account | amount | reference |
        | dave    | 40.00  | ref-301   |
        | erin    | 15.00  | ref-302   |
        | dave    | 5.00   | ref-303   |
      Then it succeeds
      And the import took ref-301, ref-302, ref-303
      And every payment of the import is in the ledger once, in its order
      And the books balance: dave 45.00, erin 15.00

    @changes-ledger
    Scenario: A row-by-row import commits the valid rows and lists each refused row with its reason
      When the application imports these payments row by row:
        | account | amount | reference |
        | dave    | 40.00  | ref-301   |
        | erin    | 0.00   | ref-302   |
        | frank   | 15.00  | ref-303   |
        | nobody  | 5.00   | ref-304   |
      Then it succeeds
      And the import took ref-301, ref-303
      And the import refused these rows:
        | reference | condition             | reason                       |
        | ref-302   | check_violation       | transactions_amount_positive |
        | ref-304   | foreign_key_violation | transactions_account_fkey    |
      And a payment of 40.00 for dave is in the ledger
      And a payment of 15.00 for frank is in the ledger
