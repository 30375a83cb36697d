Feature: Many transactions at the same time, generated at random: what each isolation level never lets happen
  The isolation scenarios show each known anomaly with a few transactions in an order
  chosen by hand. Here, several sessions run hundreds of transactions generated at random
  all at the same time, and the suite records everything each transaction read and wrote,
  and whether it committed or was rolled back. From that record alone it works out which
  transaction must have come before which, and looks for a circle: transactions that
  must each come before the next, round to the first. No order of running them one after
  another gives such a circle, so each circle is an anomaly; the report explains the
  shortest one found in plain words ("T12 appended 5 to key 3; T40 read key 3 without 5").
  
  Words used here:
  - a list: a numbered list of values the transactions share; a transaction reads whole
    lists and appends values to the end of them, every value a different one, so that any
    read shows exactly which appends came before it;
  - dirty write (G0): two transactions overwrite each other's changes in a circle;
  - aborted read (G1a): a transaction sees a change that was rolled back;
  - intermediate read (G1b): a transaction sees a change its writer changed again before
    committing;
  - circular information flow (G1c): transactions each see the other's changes, in a
    circle;
  - read skew (G-single): a circle in which exactly one transaction missed another's change;
  - write skew (G2-item): a circle in which two or more transactions missed each other's
    changes;
  - allowed: the level may let it happen; the report says whether this run saw it, and in
    how many transactions, and it never decides whether the scenario passes.
  
  What each level never lets happen comes from PostgreSQL's documentation (chapter
  "Transaction Isolation": serializable behaves as if the transactions ran one after
  another; repeatable read reads one snapshot and fails a write to a row changed since;
  read committed never shows uncommitted data), from Adya's thesis (1999), which defines
  the anomalies and says read committed forbids G0 and G1 and serializable all of them,
  and from Jepsen's analysis of PostgreSQL 12.3 (2020), which found write skew at
  repeatable read (snapshot isolation) and, in a bug fixed in 12.4, at serializable.
  The checker is Elle's method (Kingsbury and Alvaro, 2020). The transactions come from a
  seed the report prints; -D seed= runs the same transactions again.

  Rule: Serializable: the transactions behave as if run one after another, so no circle of any kind appears

    Scenario: Shared lists, read and appended to at serializable
      Given generated transactions that read shared lists and append to them
      When 4 sessions run them at the same time at serializable
      Then the history shows no dirty write (G0), aborted read (G1a), intermediate read (G1b), circular information flow (G1c), read skew (G-single) or write skew (G2-item)
      And every transaction saw its own appends, and all reads of a list agree on one order

  Rule: Repeatable read: no dirty write, no dirty read and no read skew; write skew is allowed

    Scenario: Shared lists, read and appended to at repeatable read
      Given generated transactions that read shared lists and append to them
      When 4 sessions run them at the same time at repeatable read
      Then the history shows no dirty write (G0), aborted read (G1a), intermediate read (G1b), circular information flow (G1c) or read skew (G-single)
      And every transaction saw its own appends, and all reads of a list agree on one order
      And the report says whether write skew (G2-item) appeared, and in how many transactions

  Rule: Read committed: no dirty write and no dirty read; read skew and write skew are allowed

    Scenario: Shared lists, read and appended to at read committed
      Given generated transactions that read shared lists and append to them
      When 4 sessions run them at the same time at read committed
      Then the history shows no dirty write (G0), aborted read (G1a), intermediate read (G1b) or circular information flow (G1c)
      And every transaction saw its own appends, and all reads of a list agree on one order
      And the report says whether read skew (G-single) and write skew (G2-item) appeared, and in how many transactions

  Rule: At repeatable read and serializable, a transaction that reads every balance sees them all at one moment: their total never changes

    Scenario Outline: Transfers and reads of every balance at <level>
      Given the ledger holds only alice, bob, carol, dave and erin with 100.00 each
      And generated transactions that transfer money between them or read every balance
      When 4 sessions run them at the same time at <level>
      Then every read of all balances totals 500.00

      Examples:
        | level           |
        | repeatable read |
        | serializable    |

  Rule: At read committed, a transaction that reads the balances one by one may see part of a transfer (allowed)

    Scenario: Transfers and reads of every balance at read committed
      Given the ledger holds only alice, bob, carol, dave and erin with 100.00 each
      And generated transactions that transfer money between them or read every balance
      When 4 sessions run them at the same time at read committed
      Then the report says whether a read of all balances saw a total other than 500.00
