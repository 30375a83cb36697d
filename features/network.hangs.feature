@network @changes-ledger
Feature: Every wait of a request ends, and the specification says what ends it: the hang matrix
  A request to the database waits in one of six places: while a connection opens, while
  the pool tests an idle connection before handing it out, for a statement's reply, for
  COMMIT's reply, for a connection from the pool, and for a lock. The database can fall
  silent in five ways: the server freezes (its processes stop; its machine still accepts
  and acknowledges), the network is cut (no packet gets through either way), the network
  accepts but never answers (something in between acknowledges and forwards nothing), the
  server goes away (connections refused or reset: the fault proxy in front of it does this,
  while the server itself runs on), or the server ends the session. For
  each place and each silence, a scenario states which setting of the application ends
  the wait, and after how long; the run measures it, and the report shows every cell.
  
  The application's settings, the same for every cell: a connect timeout of 2 s (the whole
  attempt to open a connection); a TCP user timeout of 0.5 s (data the network has not
  acknowledged; Linux counts it from the first retransmission, 0.4 s after the data on this
  machine's loopback, and checks a connection being opened at its first retry of the
  handshake, after 1 s); TCP keepalives after 1 s of quiet, then every 1 s, giving up after
  1 unanswered probe (a reply awaited over a quiet connection: 2 s; with the TCP user
  timeout set, Linux gives up at the first probe time past it whatever the count says,
  which is also 2 s here); a statement timeout of
  0.5 s and a lock timeout of 0.3 s, both counted and enforced by the server; a pool of one
  connection that waits 0.5 s for it to be given back; and no retry, so that each cell is
  one wait. Measured times must lie within 20 % of what the settings give; "at once" means
  an answer in under 0.5 s.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory
    And the application's connect timeout is 2 seconds
    And the application gives up on a request the network has not acknowledged after 0.5 seconds
    And the application probes a quiet connection after 1 second, then every 1 second, giving up after 1 unanswered probe
    And the server gives up any statement of the application after 0.50 seconds
    And the server gives up any lock wait of the application after 0.30 seconds
    And the application uses a pool of 1 connections and 0 more when busy, waiting at most 0.5 seconds for one
    And the application does not retry

  Rule: With nothing failing, a slow statement ends at the statement timeout and a held lock at the lock timeout; the rest is answered at once

    Scenario Outline: Nothing fails during <phase>: the payment <result>, its wait ended by <bound>
      Given nothing fails during <phase>
      When the application pays 15.00 to erin with reference ref-801
      Then the payment <result>, its wait ended by <bound>

      Examples:
        | phase                                  | result   | bound                 |
        | the opening of a connection            | succeeds | an answer at once     |
        | the pool's test of its idle connection | succeeds | an answer at once     |
        | a statement's wait for its reply       | fails    | the statement timeout |
        | COMMIT's wait for its reply            | succeeds | an answer at once     |
        | the wait for a lock                    | fails    | the lock timeout      |

  Rule: Opening a connection into a silence ends at the connect timeout; over a cut network, sooner, at the TCP user timeout's first check

    Scenario Outline: <silence> during the opening of a connection: the payment fails, its wait ended by <bound>
      Given <silence> during the opening of a connection
      When the application pays 15.00 to erin with reference ref-802
      Then the payment fails, its wait ended by <bound>

      @server-control
      Examples: The server frozen
        | silence            | bound               |
        | the server freezes | the connect timeout |

      Examples: The network
        | silence                               | bound               |
        | the network accepts but never answers | the connect timeout |

    # Both drivers stop waiting at the same moment; what they report differs (measured 5 of
    # 5 runs each): psycopg2 (its libpq 17 waiting for the connection itself) gives libpq's
    # "Connection timed out", psycopg (its own wait for each step of libpq's non-blocking
    # connect, libpq 18) gives "server closed the connection unexpectedly".
    Scenario: The network is cut during the opening of a connection: the payment fails at the TCP user timeout's first check
      Given the network is cut during the opening of a connection
      When the application pays 15.00 to erin with reference ref-802
      Then the payment fails, its wait ended by the TCP user timeout on connecting, reported as network_timeout on psycopg2, connection_lost on psycopg

  Rule: Over a cut network, the TCP user timeout ends a wait for data to be acknowledged, and the TCP keepalives a wait for a reply to data already acknowledged

    # The pool's test is a statement sent into the cut: when it fails, the pool opens a new
    # connection once, into the same cut. A statement or a lock wait the server already has
    # leaves nothing unacknowledged: only the keepalives notice; the server's own timeout
    # fires, but its error is a reply that does not get through.
    Scenario Outline: The network is cut during <phase>: the payment fails, its wait ended by <bound>
      Given the network is cut during <phase>
      When the application pays 15.00 to erin with reference ref-803
      Then the payment fails, its wait ended by <bound>

      Examples:
        | phase                            | bound                |
        | a statement's wait for its reply | the TCP keepalives   |
        | COMMIT's wait for its reply      | the TCP user timeout |
        | the wait for a lock              | the TCP keepalives   |

    # The new connection fails as a connection opened into the cut does, by driver.
    Scenario: The network is cut during the pool's test of its idle connection: the payment fails at the TCP user timeout, then again on reconnecting
      Given the network is cut during the pool's test of its idle connection
      When the application pays 15.00 to erin with reference ref-803
      Then the payment fails, its wait ended by the TCP user timeout, then again on reconnecting, reported as network_timeout on psycopg2, connection_lost on psycopg

  Rule: A frozen server, or a network that accepts but never answers, leaves a request on an open connection unbounded by any client setting: only the data layer's deadline ends it

    # Everything the application sends is acknowledged (by the frozen server's kernel, or
    # by whatever sits in between), so the TCP user timeout never fires, and keepalive
    # probes are answered; the statement and lock timeouts are the server's, which a frozen
    # server does not apply and whose error never gets through the silent network. A
    # deadline of 2.5 s outlasts every bound the settings above give (the longest is 2 s,
    # the connect timeout's and the keepalives', plus 20 %).
    Scenario Outline: <silence> during <phase>: no client setting ends the wait, the data layer's deadline does
      Given the application gives up on any request the database has not answered within 2.5 seconds
      And <silence> during <phase>
      When the application pays 15.00 to erin with reference ref-806
      Then the payment fails, unbounded by any client setting, its wait ended by the data layer's deadline

      @server-control
      Examples: The server frozen
        | silence            | phase                                  |
        | the server freezes | the pool's test of its idle connection |
        | the server freezes | a statement's wait for its reply       |
        | the server freezes | COMMIT's wait for its reply            |
        | the server freezes | the wait for a lock                    |

      Examples: The network accepts but never answers
        | silence                               | phase                                  |
        | the network accepts but never answers | the pool's test of its idle connection |
        | the network accepts but never answers | a statement's wait for its reply       |
        | the network accepts but never answers | COMMIT's wait for its reply            |
        | the network accepts but never answers | the wait for a lock                    |

  Rule: A server that goes away or ends the session is answered at once, whatever the request was waiting for

    # A server that goes away refuses new connections (connection_refused) and its open
    # connections are cut (connection_lost). The pool's test of a connection the server
    # ended fails, and the pool hands out a new connection instead: the payment goes
    # through. A session the server ends is a lost connection to psycopg2, which gives no
    # SQLSTATE; psycopg passes on the server's admin_shutdown (57P01; psycopg docs,
    # "SQLSTATE exceptions"). Both drivers' connections are then discarded.
    Scenario Outline: <silence> during <phase>: the payment <result> at once, <outcome>
      Given <silence> during <phase>
      When the application pays 15.00 to erin with reference ref-804
      Then the payment <result>, its wait ended by an answer at once: <outcome>

      Examples:
        | silence                     | phase                                  | result   | outcome                                                |
        | the server goes away        | the opening of a connection            | fails    | connection_refused                                     |
        | the server goes away        | the pool's test of its idle connection | fails    | connection_refused                                     |
        | the server goes away        | a statement's wait for its reply       | fails    | connection_lost                                        |
        | the server goes away        | COMMIT's wait for its reply            | fails    | connection_lost                                        |
        | the server goes away        | the wait for a lock                    | fails    | connection_lost                                        |
        | the server ends the session | the pool's test of its idle connection | succeeds | succeeded                                              |
        | the server ends the session | a statement's wait for its reply       | fails    | connection_lost on psycopg2, admin_shutdown on psycopg |
        | the server ends the session | COMMIT's wait for its reply            | fails    | connection_lost on psycopg2, admin_shutdown on psycopg |
        | the server ends the session | the wait for a lock                    | fails    | connection_lost on psycopg2, admin_shutdown on psycopg |

  Rule: A request waiting for a connection from the pool gives up at the pool timeout, whatever keeps the pool's connection away

    Scenario Outline: <silence> while the pool's only connection is out: the payment fails at the pool timeout
      Given <silence> during the wait for a connection from the pool
      When the application pays 15.00 to erin with reference ref-805
      Then the payment fails, its wait ended by the pool timeout

      Examples: No silence, or one in the network
        | silence                               |
        | nothing fails                         |
        | the network is cut                    |
        | the network accepts but never answers |
        | the server goes away                  |
        | the server ends the session           |

      @server-control
      Examples: The server frozen
        | silence            |
        | the server freezes |
