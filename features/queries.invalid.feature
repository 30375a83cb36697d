Feature: A query the database cannot run changes nothing and says exactly why
  Applications sometimes send the database a query it cannot run: a typo, a table or
  a column that does not exist, arithmetic without an answer, text where a number
  belongs. Each query below tries to change every payment in the ledger. PostgreSQL
  refuses it with a condition name that says exactly what was wrong, changes no
  payment, and the connection that sent it goes on working.

  Background:
    Given the ledger holds these payments:
      | account | amount | reference | status  |
      | alice   | 100.00 | ref-001   | posted  |
      | bob     | 250.50 | ref-002   | posted  |
      | carol   | 75.25  | ref-003   | pending |
    And the ledger also holds the empty accounts dave, erin, frank, grace and mallory
    And the application is connected to the ledger

  Rule: An invalid query is refused with the condition PostgreSQL names for it, and changes nothing

    Scenario Outline: Updating payments with <mistake> is refused as <condition>
      When the application updates every payment with <mistake>
      Then it fails with <condition>
      And the error message mentions "<clue>"
      And the committed ledger is unchanged

      Examples:
        | mistake                      | condition                   | clue             |
        | a misspelt keyword           | syntax_error                | UPDAT            |
        | a table that does not exist  | undefined_table             | payments         |
        | a column that does not exist | undefined_column            | colour           |
        | a division by zero           | division_by_zero            | division by zero |
        | text where a number belongs  | invalid_text_representation | ten              |

  Rule: The connection that sent an invalid query keeps working

    Scenario Outline: After <mistake>, the same connection reads the ledger
      Given the application has tried to update every payment with <mistake>
      When the application reads the ledger on the same connection
      Then it succeeds
      And it reads 3 payments
      And it was served by the same server connection

      Examples:
        | mistake                      |
        | a misspelt keyword           |
        | a table that does not exist  |
        | a column that does not exist |
        | a division by zero           |
        | text where a number belongs  |

  Rule: A value sent apart from its statement is bound by the server on psycopg and written into the statement by psycopg2: a statement that takes no values is refused on psycopg only

    # psycopg 3 sends each value apart from the statement ($1) and the server binds it,
    # which only SELECT, INSERT, UPDATE, DELETE and a few more accept: not SET (psycopg docs,
    # "Server-side binding"; PostgreSQL docs, PREPARE). psycopg2 writes the value into the
    # statement's text before sending it (psycopg2 docs, "Passing parameters to SQL queries").
    # A value of the wrong type is refused alike by both (invalid_text_representation).
    Scenario: A lock timeout set with a value sent apart from the statement is refused as a syntax error on psycopg only
      When the application sets its lock timeout to 1.5 seconds, sending the value apart from the statement
      Then on psycopg2 it succeeds; on psycopg it fails with syntax_error
      And the committed ledger is unchanged
