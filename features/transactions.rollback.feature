Feature: A transaction records all of its payments or none of them
  A transaction groups changes so that they happen together. When any statement in
  it fails, or the application rolls it back, PostgreSQL undoes every change of it:
  the ledger looks as if the transaction had never started.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A failure midway through a transaction undoes every statement of it

    Scenario Outline: A batch whose <position> payment is invalid records none of its payments
      When the application records a batch of 3 payments whose <position> one has a negative amount
      Then it fails with check_violation
      And the error message mentions "transactions_amount_positive"
      And none of the batch's payments is in the ledger
      And the committed ledger is unchanged

      Examples:
        | position |
        | first    |
        | second   |
        | last     |

    Scenario: A batch that reuses a committed reference records none of its payments
      When the application records this batch in one transaction:
        | account | amount | reference |
        | dave    | 40.00  | ref-101   |
        | erin    | 15.00  | ref-102   |
        | frank   | 60.00  | ref-001   |
      Then it fails with unique_violation
      And the error message mentions "transactions_client_ref_key"
      And none of the batch's payments is in the ledger

  Rule: A transaction that ends well records all of its payments

    @changes-ledger
    Scenario: A batch whose payments are all valid records every one of them and credits each account
      When the application records this batch in one transaction:
        | account | amount | reference |
        | dave    | 40.00  | ref-101   |
        | erin    | 15.00  | ref-102   |
        | dave    | 60.00  | ref-103   |
      Then it succeeds
      And every payment of the batch is in the ledger once, in its order
      And the books balance: dave 100.00, erin 15.00

  Rule: A rollback undoes everything the transaction did

    Scenario: A payment that was rolled back is not in the ledger
      Given the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      When the application rolls the transaction back
      Then no payment for dave is in the ledger
      And the committed ledger is unchanged

    Scenario: Payments changed and removed in a transaction are restored by its rollback
      Given the application has begun a transaction
      And the application has marked every payment reversed in that transaction
      And the application has removed the payment ref-002 in that transaction
      When the application rolls the transaction back
      Then the committed ledger is unchanged

  Rule: After a failed statement, a transaction refuses all further work until it is rolled back

    Scenario: A statement after a failed one is refused as in_failed_sql_transaction
      Given the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      And a payment reusing the reference ref-001 has failed in that transaction
      When the application records a payment of 15.00 for erin in that transaction
      Then it fails with in_failed_sql_transaction

    Scenario: Committing a failed transaction keeps none of its payments, without an error
      PostgreSQL answers COMMIT in a failed transaction by rolling it back, and reports
      no error: an application that does not check the earlier failure believes the
      payments were recorded.

      Given the application has begun a transaction
      And the application has recorded a payment of 40.00 for dave in that transaction
      And a payment reusing the reference ref-001 has failed in that transaction
      When the application commits the transaction
      Then it succeeds
      But no payment for dave is in the ledger
      And the committed ledger is unchanged

    @changes-ledger
    Scenario: After the rollback of a failed transaction, the same connection records payments again
      Given the application has begun a transaction
      And a payment reusing the reference ref-001 has failed in that transaction
      And the application has rolled the transaction back
      When the application records a payment of 15.00 for erin on its own
      Then it succeeds
      And a payment of 15.00 for erin is in the ledger
