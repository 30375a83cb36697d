Feature: What two transactions at the same time can and cannot do to each other's money
  Two (or three) transactions, T1, T2 and T3, work on the same accounts at the same time,
  one statement at a time in the order written. For each known anomaly, the scenario
  runs it at each of PostgreSQL's three isolation levels and states whether the anomaly
  is prevented or allowed there, and what prevents it: a writer waits for the other to
  finish, a transaction fails with serialization_failure (and must be retried), or the
  snapshot the transaction reads from hides the other's change.
  
  Words used here:
  - isolation level: how much a transaction is shielded from others running at the same
    time (read committed is PostgreSQL's default; the ledger's operations use it);
  - snapshot: the committed balances as they stood when the statement (read committed)
    or the transaction (repeatable read, serializable) began;
  - a search: a question over many accounts, such as "the accounts holding 20.00";
  - serialization_failure: PostgreSQL refuses the transaction and keeps none of its
    work; the application must run it again. After any failure, the rest of that
    transaction's statements are refused until it ends;
  - allowed: the outcome shown can happen in production at that level.
  Balances are set directly here, as a stand-in for any change; they are not payments.
  
  Each read states what it sees, on its own line, as Hermitage writes its transcripts
  ("select * from test where id = 1; -- T2. Still shows 1 => 10"); dave and erin are
  Hermitage's rows 1 and 2, and what each read sees at each level is Hermitage's
  PostgreSQL result or follows from the documentation's rules.
  The expected verdicts come from PostgreSQL's documentation (chapter "Transaction
  Isolation": read committed never shows uncommitted data, repeatable read reads one
  snapshot and fails a write to a row changed since, serializable also fails any set of
  transactions no serial order explains) and from the anomaly catalogue of Adya's thesis
  as tested by Hermitage (github.com/ept/hermitage). The verdict each scenario states is
  checked against what the sessions actually read, wrote and committed, and the run
  collects the verdicts into the isolation matrix of the report.

  Background:
    Given the ledger holds only dave with 10.00 and erin with 20.00

  Rule: Dirty write (G0): no level lets a transaction overwrite another's uncommitted change

    Scenario Outline: Dirty write (G0) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 sets the balance of dave to 11.00
      And T2 sets the balance of dave to 12.00
      Then T2 is waiting for T1
      When T1 sets the balance of erin to 21.00
      And T1 commits
      And T2 sets the balance of erin to 22.00
      And T2 commits
      Then dirty write (G0) is <verdict> at <level>: <how>

      Examples:
        | level           | verdict   | how                                            |
        | read committed  | prevented | a writer waits for the other to finish         |
        | repeatable read | prevented | a transaction fails with serialization_failure |
        | serializable    | prevented | a transaction fails with serialization_failure |

  Rule: Aborted read (G1a): no level shows a change that is later rolled back

    Scenario Outline: Aborted read (G1a) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 sets the balance of dave to 101.00
      And T2 sees dave at 10.00
      And T1 rolls back
      And T2 sees dave at 10.00
      And T2 commits
      Then aborted read (G1a) is <verdict> at <level>: <how>

      Examples:
        | level           | verdict   | how                           |
        | read committed  | prevented | the snapshot hides the change |
        | repeatable read | prevented | the snapshot hides the change |
        | serializable    | prevented | the snapshot hides the change |

  Rule: Intermediate read (G1b): no level shows a value a transaction changed again before committing

    Scenario Outline: Intermediate read (G1b) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 sets the balance of dave to 101.00
      And T2 sees dave at 10.00
      And T1 sets the balance of dave to 11.00
      And T1 commits
      And T2 sees dave at <T2 then sees>
      And T2 commits
      Then intermediate read (G1b) is <verdict> at <level>: <how>

      Examples:
        | level           | T2 then sees | verdict   | how                           |
        | read committed  | 11.00        | prevented | the snapshot hides the change |
        | repeatable read | 10.00        | prevented | the snapshot hides the change |
        | serializable    | 10.00        | prevented | the snapshot hides the change |

  Rule: Circular information flow (G1c): no level lets two transactions each see the other's uncommitted change

    # Each reads the row the other changed and sees its old value. At serializable one of
    # them then fails at commit for another reason: each read what the other changed, and
    # no serial order explains both committing (write skew, below).
    Scenario Outline: Circular information flow (G1c) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 sets the balance of dave to 11.00
      And T2 sets the balance of erin to 22.00
      And T1 sees erin at 20.00
      And T2 sees dave at 10.00
      And T1 commits
      And T2 commits
      Then circular information flow (G1c) is <verdict> at <level>: <how>

      Examples:
        | level           | verdict   | how                           |
        | read committed  | prevented | the snapshot hides the change |
        | repeatable read | prevented | the snapshot hides the change |
        | serializable    | prevented | the snapshot hides the change |

  Rule: Observed transaction vanishes (OTV): once a transaction's change is seen, no level makes it disappear again

    Scenario Outline: Observed transaction vanishes (OTV) at <level>
      Given T1, T2 and T3 begin transactions at <level>
      When T1 sets the balance of dave to 11.00
      And T1 sets the balance of erin to 19.00
      And T2 sets the balance of dave to 12.00
      Then T2 is waiting for T1
      When T1 commits
      And T3 sees dave at 11.00
      And T2 sets the balance of erin to 18.00
      And T3 sees erin at 19.00
      And T2 commits
      And T3 sees erin at <T3 then sees erin at>
      And T3 sees dave at <and dave at>
      And T3 commits
      Then observed transaction vanishes (OTV) is <verdict> at <level>: <how>

      Examples:
        | level           | T3 then sees erin at | and dave at | verdict   | how                                            |
        | read committed  | 18.00                | 12.00       | prevented | a writer waits for the other to finish         |
        | repeatable read | 19.00                | 11.00       | prevented | a transaction fails with serialization_failure |
        | serializable    | 19.00                | 11.00       | prevented | a transaction fails with serialization_failure |

  Rule: Predicate-many-preceders (PMP): at read committed, repeating a search within one transaction can find an account opened meanwhile; repeatable read and serializable do not

    Scenario Outline: Predicate-many-preceders (PMP) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 lists the accounts holding 30.00 and finds none
      And T2 opens the account frank with 30.00
      And T2 commits
      And T1 lists the accounts whose balance is a multiple of 3.00 and finds <T1 then finds>
      And T1 commits
      Then predicate-many-preceders (PMP) is <verdict> at <level>: <how>

      Examples:
        | level           | T1 then finds | verdict   | how                           |
        | read committed  | frank 30.00   | allowed   | nothing prevents it           |
        | repeatable read | none          | prevented | the snapshot hides the change |
        | serializable    | none          | prevented | the snapshot hides the change |

    Scenario Outline: Predicate-many-preceders over a write predicate (PMP) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 adds 10.00 to every balance
      And T2 closes the accounts holding 20.00
      Then T2 is waiting for T1
      When T1 commits
      And T2 lists the accounts holding 20.00
      And T2 commits
      Then predicate-many-preceders over a write predicate (PMP) is <verdict> at <level>: <how>

      Examples:
        | level           | verdict   | how                                            |
        | read committed  | allowed   | nothing prevents it                            |
        | repeatable read | prevented | a transaction fails with serialization_failure |
        | serializable    | prevented | a transaction fails with serialization_failure |

  Rule: Lost update (P4): at read committed a deposit made from a stale balance can be lost; repeatable read and serializable refuse it

    Scenario Outline: Lost update (P4) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 sees dave at 10.00
      And T2 sees dave at 10.00
      And T1 sets the balance of dave to what it read plus 1.00
      And T2 sets the balance of dave to what it read plus 1.00
      Then T2 is waiting for T1
      When T1 commits
      Then T2 <after T1 commits>
      When T2 commits
      Then the balance of dave is 11.00
      And lost update (P4) is <verdict> at <level>: <how>

      Examples:
        | level           | after T1 commits                 | verdict   | how                                            |
        | read committed  | completes                        | allowed   | nothing prevents it                            |
        | repeatable read | fails with serialization_failure | prevented | a transaction fails with serialization_failure |
        | serializable    | fails with serialization_failure | prevented | a transaction fails with serialization_failure |

  Rule: Read skew (G-single): at read committed one transaction can see balances from before and after another's transfer; repeatable read and serializable cannot

    Scenario Outline: Read skew (G-single) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 sees dave at 10.00
      And T2 sees dave at 10.00
      And T2 sees erin at 20.00
      And T2 sets the balance of dave to 12.00
      And T2 sets the balance of erin to 18.00
      And T2 commits
      And T1 sees erin at <T1 then sees erin at>
      And T1 commits
      Then read skew (G-single) is <verdict> at <level>: <how>

      Examples:
        | level           | T1 then sees erin at | verdict   | how                           |
        | read committed  | 18.00                | allowed   | nothing prevents it           |
        | repeatable read | 20.00                | prevented | the snapshot hides the change |
        | serializable    | 20.00                | prevented | the snapshot hides the change |

    Scenario Outline: Read skew over predicates (G-single) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 lists the accounts whose balance is a multiple of 5.00 and finds dave 10.00, erin 20.00
      And T2 sets the balance of the accounts holding 10.00 to 12.00
      And T2 commits
      And T1 lists the accounts whose balance is a multiple of 3.00 and finds <T1 then finds>
      And T1 commits
      Then read skew over predicates (G-single) is <verdict> at <level>: <how>

      Examples:
        | level           | T1 then finds | verdict   | how                           |
        | read committed  | dave 12.00    | allowed   | nothing prevents it           |
        | repeatable read | none          | prevented | the snapshot hides the change |
        | serializable    | none          | prevented | the snapshot hides the change |

    Scenario Outline: Read skew over a write predicate (G-single) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 sees dave at 10.00
      And T2 sees every balance: dave 10.00, erin 20.00
      And T2 sets the balance of dave to 12.00
      And T2 sets the balance of erin to 18.00
      And T2 commits
      And T1 closes the accounts holding 20.00
      And T1 commits
      Then read skew over a write predicate (G-single) is <verdict> at <level>: <how>

      Examples:
        | level           | verdict   | how                                            |
        | read committed  | allowed   | nothing prevents it                            |
        | repeatable read | prevented | a transaction fails with serialization_failure |
        | serializable    | prevented | a transaction fails with serialization_failure |

  Rule: Write skew (G2-item): only serializable stops two transactions that each checked both balances from each changing one of them

    Scenario Outline: Write skew (G2-item) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 sees every balance: dave 10.00, erin 20.00
      And T2 sees every balance: dave 10.00, erin 20.00
      And T1 sets the balance of dave to 11.00
      And T2 sets the balance of erin to 21.00
      And T1 commits
      And T2 commits
      Then write skew (G2-item) is <verdict> at <level>: <how>

      Examples:
        | level           | verdict   | how                                            |
        | read committed  | allowed   | nothing prevents it                            |
        | repeatable read | allowed   | nothing prevents it                            |
        | serializable    | prevented | a transaction fails with serialization_failure |

  Rule: Anti-dependency cycles (G2): only serializable stops two transactions that each found no matching account from both opening one

    Scenario Outline: Anti-dependency cycle (G2) at <level>
      Given T1 and T2 begin transactions at <level>
      When T1 lists the accounts whose balance is a multiple of 3.00 and finds none
      And T2 lists the accounts whose balance is a multiple of 3.00 and finds none
      And T1 opens the account frank with 30.00
      And T2 opens the account grace with 42.00
      And T1 commits
      And T2 commits
      Then anti-dependency cycle (G2) is <verdict> at <level>: <how>

      Examples:
        | level           | verdict   | how                                            |
        | read committed  | allowed   | nothing prevents it                            |
        | repeatable read | allowed   | nothing prevents it                            |
        | serializable    | prevented | a transaction fails with serialization_failure |

    # Fekete, O'Neil and O'Neil's read-only anomaly: T3 sees T2's change but not T1's,
    # although T1 must come before T2 (it read erin before T2 changed it).
    Scenario Outline: Anti-dependency cycle of three transactions (G2) at <level>
      Given T1, T2 and T3 begin transactions at <level>
      When T1 sees every balance: dave 10.00, erin 20.00
      And T2 sets the balance of erin to 25.00
      And T2 commits
      And T3 sees every balance: dave 10.00, erin 25.00
      And T3 commits
      And T1 sets the balance of dave to 0.00
      And T1 commits
      Then anti-dependency cycle of three transactions (G2) is <verdict> at <level>: <how>

      Examples:
        | level           | verdict   | how                                            |
        | read committed  | allowed   | nothing prevents it                            |
        | repeatable read | allowed   | nothing prevents it                            |
        | serializable    | prevented | a transaction fails with serialization_failure |
