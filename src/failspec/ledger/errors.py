"""The ledger's own refusals, named in the style of PostgreSQL's conditions."""

from failspec.conditions import NamedFailure


class ReferenceConflict(NamedFailure):
    """The client reference already names a different operation: nothing was applied."""

    condition = "reference_conflict"


class UnknownAccount(NamedFailure):
    """An operation names an account that does not exist: nothing was applied."""

    condition = "unknown_account"
