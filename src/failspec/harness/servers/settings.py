"""Run settings: behave userdata (``-D name=value``) with environment-variable twins.

Every setting is checked here, before anything starts: ``python -m
failspec.harness.servers.settings [behave options]`` checks the ``-D`` options and environment
twins the run would get, so ``./run-tests`` stops on a misspelt setting before its gates.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from sqlalchemy.engine import URL, make_url

from failspec import drivers
from failspec.harness.errors import SetupError
from failspec.ledger import port

BACKENDS = ("auto", "docker", "embedded", "url")
#: The range of ``timeout_scale``. Below 1 the suite's own bounds (a session's 1.5 s to
#: finish or block, the leak guard's 1 s grace) undercut what the scenarios themselves
#: wait for, and scenarios fail for a reason their titles do not give. Above 10 a run with
#: a fault nothing else bounds would take minutes to fail, not seconds.
TIMEOUT_SCALES = (1.0, 10.0)
#: The kind of number a numeric setting holds.
Number = TypeVar("Number", int, float)
DEFAULT_IMAGE = "postgres:18"

# userdata key -> environment variable
ENV_TWINS = {
    "backend": "FAILSPEC_BACKEND",
    "db_url": "DATABASE_URL",
    "standby_url": "FAILSPEC_STANDBY_URL",
    "pg_image": "FAILSPEC_PG_IMAGE",
    "pg_bin": "FAILSPEC_PG_BIN",
    "pg_port": "FAILSPEC_PG_PORT",
    "timeout_scale": "FAILSPEC_TIMEOUT_SCALE",
    "seed": "FAILSPEC_SEED",
    "workload_transactions": "FAILSPEC_WORKLOAD_TRANSACTIONS",
    "driver": "FAILSPEC_DRIVER",
    "data_layer": "FAILSPEC_DATA_LAYER",
    "missing_capabilities": "FAILSPEC_MISSING_CAPABILITIES",
}
#: The range of ``workload_transactions``: at least a few for each of the sessions, at
#: most what a soak on a fast machine runs in minutes.
WORKLOAD_TRANSACTIONS = (10, 1_000_000)


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told. Userdata wins over the environment."""

    backend: str = "auto"
    db_url: str | None = None
    #: A standby of the db_url server (backend=url), for the replication scenarios that
    #: only read from a standby or write to it.
    standby_url: str | None = None
    pg_image: str = DEFAULT_IMAGE
    pg_bin: str | None = None
    pg_port: int | None = None
    # Multiplies every timeout the suite sets or waits for; raise it on slow machines.
    timeout_scale: float = 1.0
    #: The seed of the generated workloads (None: a new one each run, printed).
    seed: int | None = None
    #: How many transactions each generated scenario runs (its run length).
    workload_transactions: int = 2000
    #: The database driver every connection is made with (``failspec.drivers``).
    driver: str = "psycopg2"
    #: The data layer under specification: ``package.module:factory`` (failspec.ledger.port).
    data_layer: str = port.REFERENCE
    #: The optional capabilities of the port (short names, ``port.NAMES``) the user
    #: acknowledges the data layer lacks: scenarios skipped for lack of one of them do
    #: not fail the run (they are still "not checked" in its record and closing line).
    missing_capabilities: frozenset[str] = frozenset()

    @classmethod
    def from_sources(cls, userdata: Mapping[str, str], environ: Mapping[str, str]) -> Settings:
        raw: dict[str, str] = {k: v for k, v in userdata.items() if k not in ENV_TWINS}
        for name, env in ENV_TWINS.items():
            value = userdata.get(name) or environ.get(env)
            if value:
                raw[name] = value.strip()
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            known_list = ", ".join(sorted(known))
            raise SetupError(f"unknown setting {unknown[0]!r}: known are {known_list}")
        values: dict[str, object] = dict(raw)
        backend = str(values.get("backend", "auto")).lower()
        if backend not in BACKENDS:
            raise SetupError(
                f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)} "
                "(-D backend=... or FAILSPEC_BACKEND)"
            )
        values["backend"] = backend
        driver = str(values.get("driver", "psycopg2")).lower()
        if driver not in drivers.NAMES:
            raise SetupError(
                f"unknown driver {driver!r}: use one of {', '.join(drivers.NAMES)} "
                "(-D driver=... or FAILSPEC_DRIVER)"
            )
        values["driver"] = driver
        if "data_layer" in values:
            try:
                port.load_factory(str(values["data_layer"]))
            except port.NotAFactory as error:
                raise SetupError(f"{error} (-D data_layer=... or FAILSPEC_DATA_LAYER)") from None
        if "missing_capabilities" in values:
            values["missing_capabilities"] = missing_capabilities(
                str(values["missing_capabilities"])
            )
        if backend == "url" and not values.get("db_url"):
            raise SetupError(
                "backend=url needs a server address: DATABASE_URL=postgresql://user@host:port/db "
                "(or -D db_url=...; a password goes in ~/.pgpass)"
            )
        if backend == "url":
            parse_db_url(str(values["db_url"]), driver=driver)
        if values.get("standby_url"):
            if backend != "url":
                raise SetupError(
                    "standby_url names a standby of the backend=url server; the embedded "
                    "and docker backends start their own standby: leave it unset"
                )
            parse_db_url(str(values["standby_url"]), name="standby_url", driver=driver)
        if "pg_port" in values:
            values["pg_port"] = _number(values["pg_port"], "pg_port", int, 1, 65535)
        if "timeout_scale" in values:
            scale = values["timeout_scale"]
            values["timeout_scale"] = _number(scale, "timeout_scale", float, *TIMEOUT_SCALES)
        if "seed" in values:
            values["seed"] = _number(values["seed"], "seed", int, 0, 2**63 - 1)
        if "workload_transactions" in values:
            values["workload_transactions"] = _number(
                values["workload_transactions"], "workload_transactions", int,
                *WORKLOAD_TRANSACTIONS,
            )  # fmt: skip
        # mypy cannot match a dict of mixed values to the fields by name: they are the
        # sources' strings, and the numbers converted and checked above.
        return cls(**values)  # type: ignore[arg-type]

    def seconds(self, base: float) -> float:
        """A timeout of ``base`` seconds, scaled for this machine."""
        return base * self.timeout_scale


def missing_capabilities(text: str) -> frozenset[str]:
    """``-D missing_capabilities=a,b``: short names of the port's capabilities
    (``port.NAMES``), separated by commas. Raises :class:`SetupError` naming an unknown one
    and the names there are."""
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(names - set(port.NAMES.values()))
    if unknown:
        raise SetupError(
            f"missing_capabilities names no capability of the data-layer port: {unknown[0]!r}; "
            f"there are {', '.join(port.NAMES.values())} "
            "(-D missing_capabilities=... or FAILSPEC_MISSING_CAPABILITIES)"
        )
    return names


def _number(
    value: object, name: str, kind: Callable[[Any], Number], low: float, high: float
) -> Number:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise SetupError(f"{name}={value!r} is not a number") from None
    if not low <= number <= high:
        raise SetupError(f"{name}={value!r} is out of range ({low} to {high})")
    return number


#: The form a db_url takes, in every message about one.
URL_FORM = "postgresql://user:password@host:port/database"

#: libpq parameters a db_url may not carry, and why (each refusal names the fix).
#: The suite must know where the server is (its address goes into every connection, and
#: through the fault proxy), names each connection for its scenario (application_name:
#: the leak guard finds a scenario's connections by it), and sets each connection's
#: connect_timeout itself (scenarios state their own; the harness's are scaled).
REFUSED_PARAMETERS = {
    "host": "write the host in the URL itself: " + URL_FORM,
    "hostaddr": "write the address as the URL's host: " + URL_FORM,
    "port": "write the port in the URL itself: " + URL_FORM,
    "dbname": "write the database as the URL's path: " + URL_FORM,
    "user": "write the user in the URL itself: " + URL_FORM,
    "password": "leave the password out of the URL's query: put it in ~/.pgpass (or "
    "PGPASSWORD), or percent-encoded in DATABASE_URL",
    "service": "the suite must know the server's address: write host, port and database "
    "in the URL itself",
    "application_name": "the suite names every connection for its scenario (its leak guard "
    "finds them by that name): leave application_name out",
    "connect_timeout": "the suite sets every connection's connect timeout itself (scenarios "
    "state theirs): leave it out, and raise -D timeout_scale on a slow network",
}


def parse_db_url(text: str, *, name: str = "db_url", driver: str = "psycopg2") -> URL:
    """The database URL of ``backend=url``, checked: a PostgreSQL URL with one host, and
    query parameters that are libpq connection parameters (each given once), which the
    suite passes to every connection it opens (libpq docs, "Parameter Key Words").

    Raises :class:`SetupError` with one line naming the fix. No message repeats the URL
    or any part of it that could be a password: a password with an unencoded ``@`` (or
    ``:`` ``/`` ``?`` ``#``) splits the URL in the wrong place, so what a parser takes for
    the host may be the end of the password (RFC 3986: userinfo ends at the first ``@``).
    ``name``: the setting's name, for the messages; ``driver``: whose libpq judges the
    parameters (psycopg2's and psycopg's each bundle their own).
    """
    encode = "percent-encode @ : / ? # % in the user name and password (%40 for @)"
    try:
        url = make_url(text)
    except Exception:
        raise SetupError(f"{name} is not a database URL: use {URL_FORM} ({encode})") from None
    if url.host and "@" in url.host:
        raise SetupError(
            f"{name} has an '@' after its user and password: write an '@' in the password as "
            "%40, e.g. postgresql://user:p%40ss@host/db (or keep the password in ~/.pgpass)"
        )
    if not url.drivername.startswith("postgresql") or not url.host:
        raise SetupError(
            f"{name} must name a PostgreSQL server by its host: use {URL_FORM} ({encode})"
        )
    for key, value in url.query.items():
        if key in REFUSED_PARAMETERS:
            raise SetupError(f"{name} may not set {key}: {REFUSED_PARAMETERS[key]}")
        if not isinstance(value, str):
            raise SetupError(f"{name} sets {key} {len(value)} times: give it once")
        if not _is_libpq_parameter(key, drivers.DRIVERS[driver]):
            raise SetupError(
                f"{name} sets {key!r}, which is not a libpq connection parameter (see "
                'libpq\'s "Parameter Key Words"): correct or remove it'
            )
    return url


def _is_libpq_parameter(key: str, driver: drivers.Driver) -> bool:
    """Whether the driver's libpq knows ``key`` (asked through its own conninfo parser)."""
    if not re.fullmatch(r"[a-z_]+", key):
        return False
    try:
        drivers.parse_dsn(f"{key}=x", driver)
    except Exception:  # libpq: invalid connection option
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Check the settings a behave run with these arguments would get: its userdata (``-D``
    options and the project's configuration, read by behave's own parser) and the
    environment twins. Print one line and return 2 if one is wrong, else return 0.
    behave's parser exits (status 2, with its usage) on an option it does not know."""
    import os

    from behave.configuration import Configuration

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        Settings.from_sources(Configuration(args).userdata, os.environ)
    except SetupError as error:
        print(f"failspec: cannot run: {error}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
