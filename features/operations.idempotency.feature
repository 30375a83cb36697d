Feature: Repeating an operation never applies it twice
  Every payment and transfer carries the client's own reference. When a client is not
  sure an operation went through (a timeout, a lost reply) it sends it again with the
  same reference; the ledger applies it once and tells the client it was already
  applied. It recognises the repeat before it tries any of the work again, so a repeat
  is never refused for a reason that only the first one's success created (the money
  has already left), and never waits for accounts it will not change. A reference that
  already names a different operation is refused. Two requests with the same reference
  at the same time (T1 and T2, two instances of the application) are settled by the
  database: the second waits for the first, and is then told what the first did.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: An operation repeated with the same reference is applied once, and the repeat says so

    @changes-ledger
    Scenario: A payment sent twice is applied once
      Given the application has paid 40.00 to dave with reference ref-501
      When the application pays 40.00 to dave with reference ref-501
      Then it succeeds, reporting the operation as already applied
      And the balance of dave is 40.00
      And exactly one operation has the reference ref-501

    @changes-ledger
    Scenario: A transfer sent twice moves the money once
      Given the application has transferred 30.00 from alice to bob with reference ref-502
      When the application transfers 30.00 from alice to bob with reference ref-502
      Then it succeeds, reporting the operation as already applied
      And the balance of alice is 70.00
      And the balance of bob is 280.50

    @changes-ledger
    Scenario: A payment repeated with its amount written without cents is recognised as the same payment
      Given the application has paid 40.00 to dave with reference ref-507
      When the application pays 40 to dave with reference ref-507
      Then it succeeds, reporting the operation as already applied
      And the balance of dave is 40.00

    @network @changes-ledger
    Scenario: A payment whose reply was lost is applied once when the client sends it again
      Given the application does not retry
      And the network will lose the reply to the next commit
      And the application has tried to pay 40.00 to dave with reference ref-503 and lost the reply
      When the network recovers
      And the application pays 40.00 to dave with reference ref-503
      Then it succeeds, reporting the operation as already applied
      And the balance of dave is 40.00
      And exactly one operation has the reference ref-503

  Rule: A repeat is recognised before any of its work is tried again

    @changes-ledger
    Scenario: A transfer repeated after it emptied its source is reported as already applied, not refused for lack of money
      Given the application has transferred 100.00 from alice to bob with reference ref-505
      When the application transfers 100.00 from alice to bob with reference ref-505
      Then it succeeds, reporting the operation as already applied
      And the books balance: alice 0.00, bob 350.50

    @changes-ledger
    Scenario: A repeated transfer does not wait for an account another session is changing
      Given the application has transferred 30.00 from alice to bob with reference ref-506
      When T1 locks the account of bob
      And T2 transfers 30.00 from alice to bob with reference ref-506
      Then T2's transfer succeeds, reporting the operation as already applied
      And no session waited

  Rule: A reference that already names a different operation is refused

    @changes-ledger
    Scenario: Reusing a reference for a different amount is refused as reference_conflict
      Given the application has paid 40.00 to dave with reference ref-504
      When the application pays 45.00 to dave with reference ref-504
      Then it fails with reference_conflict
      And the balance of dave is 40.00

  Rule: Of two requests with the same reference at the same time, the second waits for the first and is told what it did

    @changes-ledger
    Scenario: The same payment sent twice at the same time is applied once, and the second request is told it was already applied
      Given T1 pauses its next operation before it commits
      When T1 pays 40.00 to dave with reference ref-511
      And T2 pays 40.00 to dave with reference ref-511
      Then T2 is waiting for T1
      When T1 continues its payment
      Then T1's payment succeeds
      And T2's payment succeeds, reporting the operation as already applied
      And exactly one operation has the reference ref-511
      And the balance of dave is 40.00

    @changes-ledger
    Scenario: A different payment sent with the same reference at the same time is refused as reference_conflict
      Given T1 pauses its next operation before it commits
      When T1 pays 40.00 to dave with reference ref-512
      And T2 pays 45.00 to dave with reference ref-512
      Then T2 is waiting for T1
      When T1 continues its payment
      Then T1's payment succeeds
      And T2 fails with reference_conflict
      And the balance of dave is 40.00

    @changes-ledger
    Scenario: A transfer sent with the reference of a payment in flight is refused as reference_conflict, and moves no money
      Given T1 pauses its next operation before it commits
      When T1 pays 40.00 to dave with reference ref-513
      And T2 transfers 40.00 from alice to dave with reference ref-513
      Then T2 is waiting for T1
      When T1 continues its payment
      Then T1's payment succeeds
      And T2 fails with reference_conflict
      And the books balance: alice 100.00, dave 40.00
