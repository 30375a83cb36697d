Feature: Cancelling a request while the server works on it: by the application, by an administrator, or by a client that goes away
  A request can be cancelled while the server is still working on it. The application
  itself can ask for it (a user gave up, a deadline passed): PostgreSQL's client library
  sends the server a cancel request over a connection of its own. If the cancel comes in
  time, the statement stops early and fails with query_canceled; if the server had already
  finished the statement, the cancel has no visible effect at all (libpq, "Canceling
  Queries in Progress"). An administrator can do the same from another session
  (pg_cancel_backend, "Server Signaling Functions"): it cancels the statement that server
  process is running now. Either way the session keeps its connection; a statement that
  fails inside a transaction aborts that transaction, which then refuses every further
  statement (in_failed_sql_transaction) until it is rolled back.
  A client that simply goes away (its process killed, by the OOM killer or a container
  runtime) sends no cancel. The server finds out only when it next talks to the client,
  which is when it sends the result, so it goes on with the work to its end. With
  client_connection_check_interval (PostgreSQL 14 and later, on Linux and a few other
  systems) it checks the client's connection at that interval while it runs a statement,
  and ends the session of a client that is gone ("Connections and Authentication"); the
  bound below allows 0.1 seconds beyond the interval for the server process to end and be
  seen gone.
  A report that the server needs a few seconds for stands in for a heavy query.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory

  Rule: A cancelled statement fails with query_canceled, the server stops it, and the session keeps its connection

    Scenario Outline: A report cancelled by <who> fails with query_canceled and stops on the server
      When T1 starts a report the server needs 5 seconds for
      And <who> cancels T1's report
      Then T1 fails with query_canceled
      And the server is no longer running T1's report
      And T1 is still connected to the same server process

      Examples:
        | who              |
        | the application  |
        | an administrator |

  Rule: After a cancel, the session's transaction refuses all work until it is rolled back; then the same connection works again

    Scenario Outline: T1's transaction refuses to read after <who> cancelled its report, until T1 rolls back
      When T1 starts a report the server needs 5 seconds for
      And <who> cancels T1's report
      And T1 reads the balance of bob
      Then T1 fails with in_failed_sql_transaction
      When T1 rolls back
      And T1 reads the balance of bob
      Then T1 completes
      And T1 is still connected to the same server process

      Examples:
        | who              |
        | the application  |
        | an administrator |

  Rule: A session whose wait for a lock is cancelled stops waiting, and the holder is not disturbed

    Scenario Outline: T2's wait for the account T1 holds, cancelled by <who>
      When T1 locks the account of alice
      And T2 locks the account of alice
      Then T2 is waiting for T1
      When <who> cancels T2's wait for the account
      Then T2 fails with query_canceled
      And T2 no longer waits for any lock
      When T1 commits
      Then T1 completes

      Examples:
        | who              |
        | the application  |
        | an administrator |

  Rule: A payment cancelled while the server is recording it is not recorded, and is not tried again

    Scenario Outline: A payment the server is still recording, cancelled by <who>
      Given only the first attempt to record an operation is slow, taking the server 5 seconds
      When T1 starts paying 5.00 to dave with reference ref-031
      And <who> cancels T1's payment
      Then T1 fails with query_canceled
      And the server is no longer running T1's payment
      And no payment for dave is in the ledger

      Examples:
        | who              |
        | the application  |
        | an administrator |

  Rule: A cancel that comes after the payment has committed changes nothing: the payment stays, once, and the session works on

    @changes-ledger
    Scenario Outline: T1's payment, cancelled by <who> after it has committed
      Given T1 has paid 5.00 to dave with reference ref-031
      When <who> cancels T1's payment
      And T1 reads the balance of dave
      Then T1 completes
      And exactly one operation has the reference ref-031
      And a payment of 5.00 for dave is in the ledger

      Examples:
        | who              |
        | the application  |
        | an administrator |

  Rule: The server goes on with the statement of a client that went away without cancelling until it next talks to it, unless it checks its clients; then it ends the session within the check interval

    Scenario: Without checks, the server runs the report of a killed worker to its end
      When a worker of the application starts a report the server needs 1 second for
      And the worker's process is killed
      Then the server goes on with the report to its end, 1 second after it began, and only then ends the worker's session

    Scenario: A server that checks its clients every 0.2 seconds ends the session of a killed worker within 0.3 seconds
      Given the server checks every 0.2 seconds that the client of a running statement is still there
      When a worker of the application starts a report the server needs 5 seconds for
      And the worker's process is killed
      Then the server ends the worker's session within 0.3 seconds of its going away
