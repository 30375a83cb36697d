@replication
Feature: Failover: which payments the client was told about survive a promotion
  A ledger that outgrows one server runs a primary and a standby, which PostgreSQL keeps
  current by streaming replication. When the primary fails, a failover manager (Patroni,
  pg_auto_failover, a cloud's managed failover) promotes the standby. Whether a payment the
  client was told about survives depends on synchronous_commit: with off and local the
  primary does not wait for the standby; with remote_write, on and remote_apply it waits
  until the standby has written, flushed or applied the payment (PostgreSQL documentation,
  "Synchronous Replication"). What the application sees afterwards depends on its
  connection string. After every scenario the durability guard checks that each payment
  the application was told was applied is in the ledger of the primary of the moment.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status |
      | alice   | 100.00 | ref-001   | posted |
    And the ledger also holds the empty accounts dave

  Rule: With asynchronous replication, a payment the client was told about is lost when a standby that never received it is promoted

    @changes-ledger @expect-loss @server-control
    Scenario: A payment acknowledged while the standby was cut off is gone after the promotion
      Given the standby is cut off from the primary
      And the application has paid 40.00 to dave with reference ref-601
      When the primary crashes and the standby is promoted
      Then no payment for dave is in the ledger
      And the balance of dave is 0.00

  Rule: The synchronous_commit level decides whether the client is told before the standby has the payment, and so whether a promotion can lose it

    @changes-ledger @server-control
    Scenario Outline: With synchronous_commit <level> and the standby cut off, the client <told>, and the promoted standby <holds> the payment
      Given the primary waits for the standby to confirm each commit
      And the application commits with synchronous_commit <level>
      And the application does not retry
      And the standby is cut off from the primary
      And the application is paying 40.00 to dave with reference ref-611
      When the primary crashes and the standby is promoted
      Then the application <told>
      And the new primary <holds> the payment ref-611

      @expect-loss
      Examples: The primary does not wait for the standby: the client is told, and the payment is lost
        | level | told                    | holds         |
        | off   | was told it was applied | does not hold |
        | local | was told it was applied | does not hold |

      Examples: The primary waits for the standby: the client is never told, so nothing it was told is lost
        | level        | told                        | holds         |
        | remote_write | was not told it was applied | does not hold |
        | on           | was not told it was applied | does not hold |
        | remote_apply | was not told it was applied | does not hold |

    @changes-ledger @server-control
    Scenario Outline: With synchronous_commit <level> and the standby connected, a payment the client was told about survives the promotion
      Given the primary waits for the standby to confirm each commit
      And the application commits with synchronous_commit <level>
      And the application is paying 40.00 to dave with reference ref-621
      When the primary crashes and the standby is promoted
      Then the application was told it was applied
      And the new primary holds the payment ref-621

      Examples:
        | level        |
        | remote_write |
        | on           |
        | remote_apply |

  Rule: A network partition between the primary and the standby looks like a cut-off standby to the client, but the primary still lists the standby as streaming until its wal_sender_timeout

    @changes-ledger @server-control
    Scenario Outline: With synchronous_commit <level> and the network between the primary and the standby partitioned, the client <told>, and the promoted standby <holds> the payment
      Given the primary waits for the standby to confirm each commit
      And the application commits with synchronous_commit <level>
      And the application does not retry
      And the network between the primary and the standby is partitioned
      And the application is paying 40.00 to dave with reference ref-615
      When the primary crashes and the standby is promoted
      Then the application <told>
      And the new primary <holds> the payment ref-615

      @expect-loss
      Examples: The primary does not wait for the standby: the client is told, and the payment is lost
        | level | told                    | holds         |
        | off   | was told it was applied | does not hold |
        | local | was told it was applied | does not hold |

      Examples: The primary waits for the standby: the client is never told, so nothing it was told is lost
        | level        | told                        | holds         |
        | remote_write | was not told it was applied | does not hold |
        | on           | was not told it was applied | does not hold |
        | remote_apply | was not told it was applied | does not hold |

    @changes-ledger @server-control
    Scenario: While the network between them is partitioned, a payment's COMMIT waits for the standby, which the primary still lists as streaming
      Given the primary waits for the standby to confirm each commit
      And the network between the primary and the standby is partitioned
      When the application is paying 40.00 to dave with reference ref-616
      Then the payment's COMMIT waits for the standby
      And the primary still lists the standby as streaming

    @changes-ledger @server-control
    Scenario: A payment's COMMIT waits while the standby's processes are stopped, and the client is told it was applied once they continue
      Given the primary waits for the standby to confirm each commit
      And the standby's processes are stopped
      And the application is paying 40.00 to dave with reference ref-617
      When the standby's processes continue
      Then the application was told it was applied
      And the payment's COMMIT waited for the standby
      And the balance of dave is 40.00

  Rule: A COMMIT waiting for a standby that is gone waits without bound; cancelled, it is in doubt: the primary shows it, a promotion may lose it, and the ledger never calls it applied

    @changes-ledger @server-control
    Scenario: A payment's COMMIT waiting for a standby that is gone outlasts the statement timeout; only the data layer's deadline ends it, its outcome unknown
      Given the primary waits for the standby to confirm each commit
      And the standby is cut off from the primary
      And the application does not retry
      And the server gives up any statement of the application after 0.2 seconds
      And the application gives up on any request the database has not answered within 1 second
      When the application pays 40.00 to dave with reference ref-630
      Then it fails with deadline_exceeded, saying the payment may or may not have been applied
      And it took at least 1 seconds
      And the server applies a statement timeout of 0.2 seconds to the application's statements

    @changes-ledger @server-control
    Scenario: A payment whose wait for the standby an administrator cancels is reported in doubt, though the primary shows it
      Given the primary waits for the standby to confirm each commit
      And the standby is cut off from the primary
      And the application is paying 40.00 to dave with reference ref-631
      When an administrator cancels the payment's wait for the standby
      Then the application is told the payment is in doubt (transaction_resolution_unknown)
      And the balance of dave is 40.00

    @changes-ledger @server-control
    Scenario: A payment whose session an administrator ends while it waits for the standby is reported in doubt, not found and called applied by a retry
      Given the primary waits for the standby to confirm each commit
      And the standby is cut off from the primary
      And the application is paying 40.00 to dave with reference ref-634
      When an administrator ends the session of the payment waiting for the standby
      Then the application is told the payment is in doubt (transaction_resolution_unknown)
      And the balance of dave is 40.00

    @changes-ledger @server-control
    Scenario: After the promotion, the payment in doubt is found missing by its reference and applied once
      Given the application connects to both servers, asking for one that accepts writes
      And the primary waits for the standby to confirm each commit
      And the standby is cut off from the primary
      And the application has paid 40.00 to dave with reference ref-632, and was told it is in doubt once its wait was cancelled
      When the primary crashes and the standby is promoted
      And the application pays 40.00 to dave with reference ref-632
      Then it succeeds, reporting the operation as applied now
      And the balance of dave is 40.00
      And exactly one operation has the reference ref-632

  Rule: A lost reply to COMMIT followed by a failover leaves the payment applied exactly once, whether or not the new primary had received it

    @changes-ledger @server-control @network
    Scenario Outline: The reply to a payment's COMMIT is lost and the primary fails over while the ledger waits to retry; the retry <finds>
      Given the application connects through an address that follows the primary, as a virtual IP does
      And <replication>
      And the network will lose the reply to the next commit, and recover while the ledger waits to retry
      And the primary will crash and the standby be promoted while the ledger waits to retry
      When the application pays 40.00 to dave with reference ref-681
      Then it succeeds, reporting the operation as <reported>
      And the standby has been promoted and is the primary the ledger is read from
      And exactly one operation has the reference ref-681
      And the balance of dave is 40.00

      Examples:
        | replication                                              | finds                                            | reported        |
        | the primary waits for the standby to confirm each commit | the payment on the new primary by its reference  | already applied |
        | the standby is cut off from the primary                  | the new primary without the payment, and pays it | applied now     |

  Rule: A standby shows only what it has replayed, and refuses writes

    @changes-ledger @server-control
    Scenario: A standby whose replay is behind does not show a payment the primary has acknowledged
      Given the standby has stopped replaying what it receives
      When the application pays 40.00 to dave with reference ref-641
      Then it succeeds
      And the standby shows no payment for dave

    @changes-ledger @server-control
    Scenario: With synchronous_commit remote_apply, a payment is on the standby as soon as the client is told, even from a standby that applies late
      Given the standby applies what it receives 0.3 seconds late
      And the primary waits for the standby to confirm each commit
      And the application commits with synchronous_commit remote_apply
      When the application pays 40.00 to dave with reference ref-642
      Then it succeeds
      And it took at least 0.3 seconds
      And the standby shows a payment of 40.00 for dave

    Scenario: A payment sent to the standby is refused with read_only_sql_transaction
      When the application pays 40.00 to dave with reference ref-643 on the standby
      Then it fails with read_only_sql_transaction
      And no payment for dave is in the ledger

  Rule: A long report on the standby is cancelled when replay must remove row versions it may still read, unless the standby tells the primary which ones its queries need

    @changes-ledger @server-control
    Scenario: A report on the standby that outlasts max_standby_streaming_delay is cancelled with serialization_failure once the primary vacuums away the rows it reads
      Given the standby cancels queries in the way of its replay after 0.1 seconds
      And a report on the standby is adding up the balances, taking 1.5 seconds
      When the application pays 40.00 to dave with reference ref-645
      And the primary vacuums the accounts
      Then the report fails with serialization_failure, cancelled by a conflict with recovery

    @changes-ledger @server-control
    Scenario: With hot_standby_feedback, the same report on the standby completes, showing the balances as they were when it began
      Given the standby cancels queries in the way of its replay after 0.1 seconds
      And the standby tells the primary which row versions its queries still read
      And a report on the standby is adding up the balances, taking 1.5 seconds
      When the application pays 40.00 to dave with reference ref-646
      And the primary vacuums the accounts
      Then the report shows balances adding up to 100.00

  Rule: An application finds the new primary only if its connection string lists it

    @changes-ledger @server-control
    Scenario: An application whose connection string lists both servers and asks for one that accepts writes pays into the new primary
      Given the application connects to both servers, asking for one that accepts writes
      And the primary has crashed and the standby has been promoted
      When the application pays 40.00 to dave with reference ref-651
      Then it succeeds
      And the balance of dave is 40.00

    @server-control
    Scenario: An application that knows only the old primary's address keeps failing after the promotion
      Given the application connects to the old primary's address only
      And the primary has crashed and the standby has been promoted
      When the application pays 40.00 to dave with reference ref-652
      Then it fails with connection_refused
      And no payment for dave is in the ledger

  Rule: An application partitioned from the primary never pays into the standby when it asks for a server that accepts writes

    @network
    Scenario: Cut off from the primary by a network partition, an application that asks for a server that accepts writes fails, and the standby gets no payment
      Given the application connects to both servers, reaching the primary through the network, asking for one that accepts writes
      And the application's connect timeout is 2 seconds
      And the application does not retry
      When the network to the database goes silent
      And the application pays 40.00 to dave with reference ref-671
      Then it fails with read_only_session
      And it took at least 2 seconds
      And no payment for dave is in the ledger

  Rule: An old primary that comes back as a standby is never written to by an application that asks for a server that accepts writes

    @changes-ledger @server-control
    Scenario: Asking for a server that accepts writes, the application skips the old primary and pays into the new one
      Given the application connects to both servers, asking for one that accepts writes
      And the primary has crashed and the standby has been promoted
      And the old primary has come back as a standby of the new one
      When the application pays 40.00 to dave with reference ref-661
      Then it succeeds
      And the balance of dave is 40.00

    @server-control
    Scenario: Taking the first server that answers, the application reaches the old primary and its payment is refused
      Given the application connects to both servers, taking the first that answers
      And the primary has crashed and the standby has been promoted
      And the old primary has come back as a standby of the new one
      When the application pays 40.00 to dave with reference ref-662
      Then it fails with read_only_sql_transaction
      And no payment for dave is in the ledger
