Feature: Repeating an operation never applies it twice
  Every payment and transfer carries the client's own reference. When a client is not
  sure an operation went through (a timeout, a lost reply) it sends it again with the
  same reference; the ledger applies it once and tells the client it was already
  applied. A reference that already names a different operation is refused.

  Background:
    Given the ledger holds the sample payments

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
    Scenario: A payment whose reply was lost is applied once when the client sends it again
      Given the application does not retry
      And the reply to the next commit will be lost
      And the application has tried to pay 40.00 to dave with reference ref-503 and lost the reply
      When the application pays 40.00 to dave with reference ref-503
      Then it succeeds, reporting the operation as already applied
      And the balance of dave is 40.00
      And exactly one operation has the reference ref-503

  Rule: A reference that already names a different operation is refused

    @changes-ledger
    Scenario: Reusing a reference for a different amount is refused as reference_conflict
      Given the application has paid 40.00 to dave with reference ref-504
      When the application pays 45.00 to dave with reference ref-504
      Then it fails with reference_conflict
      And the balance of dave is 40.00
