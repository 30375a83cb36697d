"""Standbys of an embedded server: a copy of a running primary made with PostgreSQL's
own ``pg_basebackup``, kept current by streaming replication from a replication slot,
and an old primary turned into a standby of the new one with ``pg_rewind``, as failover
managers do (docs: "High Availability, Load Balancing, and Replication", "Log-Shipping
Standby Servers"; the reference pages of pg_basebackup and pg_rewind).

Each standby reaches its primary over the primary's Unix socket, which the template's
``pg_hba.conf`` trusts for replication (initdb's default for ``--auth-local=trust``), so
no password travels in a ``primary_conninfo``. The ``application_name`` of that
connection is the standby's name: the name ``synchronous_standby_names`` lists and
``pg_stat_replication`` shows.
"""

from __future__ import annotations

import os
from pathlib import Path

from failspec.harness.postgres.cluster import SUPERUSER, EmbeddedPostgres

#: Settings every member of a replicated cluster starts with, on top of the test
#: settings. ``full_page_writes`` and ``wal_log_hints`` let pg_rewind work, also on a
#: cluster without data checksums (PostgreSQL 15's initdb default; 18 turns them on);
#: ``wal_receiver_status_interval``
#: of 1 s makes a standby report its position, and with ``hot_standby_feedback`` its
#: oldest snapshot, within a second rather than ten. What a scenario changes
#: (``synchronous_standby_names``, ``hot_standby_feedback``, ``max_standby_streaming_delay``,
#: ``primary_conninfo``) is NOT here: settings given at start override ``ALTER SYSTEM``.
CLUSTER_SETTINGS = {
    "wal_level": "replica",
    "full_page_writes": "on",  # pg_rewind requires it of its source
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "hot_standby": "on",
    "wal_log_hints": "on",
    "wal_receiver_status_interval": "1s",
    "wal_retrieve_retry_interval": "100ms",
}


def conninfo(primary: EmbeddedPostgres, application_name: str) -> str:
    """The libpq connection string a standby named ``application_name`` streams from
    ``primary`` with (over its Unix socket)."""
    return (
        f"host={primary.base} port={primary.port} user={SUPERUSER} "
        f"application_name={application_name}"
    )


def relay_conninfo(primary: EmbeddedPostgres, application_name: str, host: str, port: int) -> str:
    """The libpq connection string a standby named ``application_name`` streams from
    ``primary`` with through a TCP relay at ``host``:``port`` that forwards to the
    primary's TCP port: as the primary's role, with its password (the template's
    ``pg_hba.conf`` asks TCP connections for scram-sha-256, replication ones too)."""
    return (
        f"host={host} port={port} user={SUPERUSER} password={primary.password} "
        f"application_name={application_name} connect_timeout=2"
    )


def clone(primary: EmbeddedPostgres, name: str, *, ready_timeout: float) -> EmbeddedPostgres:
    """A new standby of the running ``primary``, named ``name``, started and streaming.

    ``pg_basebackup -X stream -C -S name -R`` copies the primary's data directory while it
    runs, creates the physical replication slot ``name`` (so the primary keeps the WAL the
    standby has not received), and writes ``standby.signal``. Raises ``SetupError`` if
    pg_basebackup fails or the standby does not start within ``ready_timeout`` seconds.
    """
    standby = EmbeddedPostgres(
        primary.bin_dir, ready_timeout=ready_timeout, settings=dict(primary.settings)
    )
    standby.standby = True
    standby.password = primary.password  # the copy's role has the primary's password
    try:
        standby.make_base()
        assert standby.base is not None
        standby.run_program(
            "pg_basebackup", "-D", str(standby.data), "-d", conninfo(primary, name),
            "-X", "stream", "-C", "-S", name, "-R", "--no-sync",
            "--checkpoint=fast",
        )  # fmt: skip
        follow(standby, primary, name)
        standby.start()
    except BaseException:
        standby.stop()
        raise
    return standby


def follow(standby: EmbeddedPostgres, primary: EmbeddedPostgres, name: str) -> None:
    """Make ``standby``'s data directory (stopped) that of a standby streaming from
    ``primary`` through the slot ``name``: ``standby.signal`` and the two settings, written
    last in ``postgresql.auto.conf`` (the later of two lines for a setting holds)."""
    standby.standby = True
    signal_file = standby.data / "standby.signal"
    signal_file.touch()
    if standby.user is not None:  # the server removes it on promotion
        os.chown(signal_file, standby.user.pw_uid, standby.user.pw_gid)
    _append_settings(
        standby.data / "postgresql.auto.conf",
        {"primary_conninfo": conninfo(primary, name), "primary_slot_name": name},
    )


def rejoin(old: EmbeddedPostgres, new_primary: EmbeddedPostgres, name: str) -> None:
    """Bring ``old`` (a primary that crashed or was stopped) back as a standby of
    ``new_primary`` named ``name``, as failover managers do: ``pg_rewind`` undoes what the
    old timeline wrote after the two diverged (it first runs crash recovery on a cluster
    that was not shut down cleanly), and the server starts as a standby. The slot
    ``name`` is created on the new primary first. Raises ``SetupError`` when pg_rewind
    fails or the server does not start."""
    if old.pid is not None:
        old.stop(mode="fast", remove=False)
    new_primary.execute_local(
        "SELECT pg_create_physical_replication_slot(%s) WHERE NOT EXISTS "
        "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
        name,
        name,
    )
    # pg_rewind first runs crash recovery in a single-user server, which reads only the
    # configuration files (not the -c options the server ran with) and records their
    # wal_log_hints in pg_control; without data checksums (PostgreSQL 15's default)
    # pg_rewind then refuses the target.
    _append_settings(old.data / "postgresql.auto.conf", {"wal_log_hints": "on"})
    old.run_program(
        "pg_rewind", "-D", str(old.data), "--no-sync",
        f"--source-server={conninfo(new_primary, 'pg_rewind')} dbname=postgres",
    )  # fmt: skip
    follow(old, new_primary, name)
    # The rewound server is consistent only once it has replayed the new primary's WAL
    # past the point pg_rewind copied up to; an idle primary writes nothing more for
    # seconds. A checkpoint writes (and flushes) a record now.
    new_primary.execute_local("CHECKPOINT")
    old.restart()


def _append_settings(path: Path, settings: dict[str, str]) -> None:
    lines = "".join(f"{name} = '{value}'\n" for name, value in settings.items())
    with path.open("a") as conf:
        conf.write(lines)
