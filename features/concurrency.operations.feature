Feature: Payments and transfers on one account at the same time: each counts once, none overdraws
  Two instances of the application, T1 and T2, pay into or take money out of the same
  account at the same time, through the ledger. Each change to a balance is made by the
  database on the balance as it is when the change is made, and holds the account until
  its transaction ends: the second waits for the first, then counts on top of it. A
  ledger that read the balance first and wrote back what it computed would lose one of
  the two (a lost update), or let two withdrawals spend the same money. Here T1 is held
  just before it commits, so the order of events is exact.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory
    And T1 pauses its next operation before it commits

  Rule: Two payments into one account at the same time both count

    @changes-ledger
    Scenario: Two payments into one account at the same time: the second waits for the first, and the balance holds both
      When T1 pays 10.00 to dave with reference ref-901
      And T2 pays 20.00 to dave with reference ref-902
      Then T2 is waiting for T1
      When T1 continues its payment
      Then T1's payment succeeds after 1 attempt
      And T2's payment succeeds after 1 attempt
      And the balance of dave is 30.00

  Rule: Two transfers out of one account at the same time never spend more than it holds

    @changes-ledger
    Scenario: Of two transfers that would each take most of one account, the second waits for the first and is refused
      When T1 transfers 60.00 from alice to bob with reference ref-903
      And T2 transfers 60.00 from alice to carol with reference ref-904
      Then T2 is waiting for T1
      When T1 continues its transfer
      Then T1's transfer succeeds after 1 attempt
      And T2 fails with check_violation
      And the books balance: alice 40.00, bob 310.50, carol 75.25

    @changes-ledger
    Scenario: Two transfers that fit the account together both go through, one after the other
      When T1 transfers 30.00 from alice to bob with reference ref-905
      And T2 transfers 50.00 from alice to carol with reference ref-906
      Then T2 is waiting for T1
      When T1 continues its transfer
      Then T1's transfer succeeds after 1 attempt
      And T2's transfer succeeds after 1 attempt
      And the books balance: alice 20.00, bob 280.50, carol 125.25

  Rule: A payment into an account and a transfer out of it at the same time both count

    @changes-ledger
    Scenario: A payment into an account that a transfer is taking money out of at the same time counts in full
      When T1 transfers 70.00 from bob to erin with reference ref-907
      And T2 pays 30.00 to bob with reference ref-908
      Then T2 is waiting for T1
      When T1 continues its transfer
      Then T1's transfer succeeds after 1 attempt
      And T2's payment succeeds after 1 attempt
      And the books balance: bob 210.50, erin 70.00
