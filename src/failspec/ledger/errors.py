"""The ledger's own refusals, named in the style of PostgreSQL's conditions."""

from failspec.conditions import NamedFailure


class ReferenceConflict(NamedFailure):
    """The client reference already names a different operation: nothing was applied."""

    condition = "reference_conflict"


class UnknownAccount(NamedFailure):
    """An operation names an account that does not exist: nothing was applied."""

    condition = "unknown_account"


class NotReplicated(NamedFailure):
    """COMMIT returned, but the server warned that the transaction committed on the
    primary without the confirmation of its synchronous standby (the wait was cancelled
    or the session terminated): whether it survives a failover is unknown. Named for the
    SQLSTATE class PostgreSQL has for an outcome the client cannot know,
    ``transaction_resolution_unknown`` (08007). Not retried: on this primary the repeat
    would find the payment and call it applied, which is the claim that is in doubt."""

    condition = "transaction_resolution_unknown"
