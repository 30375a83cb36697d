"""The hang matrix: what bounds each phase of a request under each kind of silence.

A *phase* is where a request waits: opening a connection, the pool testing an idle
connection before handing it out (``pool_pre_ping``), a statement waiting for its reply,
COMMIT waiting for its reply, waiting for a pooled connection, waiting for a lock. A
*silence* is what the user sees of a fault (:data:`FAULTS`). For each pair a scenario
states which setting ends the wait and after how long (:data:`BOUNDS`, each computed
from the settings the application really used), runs it on real sockets, and
:class:`HangMatrix` keeps the measured time, written to ``reports/hang-matrix.json`` and
shown in the report.

Where the expected times come from:

* libpq, "Parameter Key Words": ``connect_timeout`` (whole seconds, the wait for the
  whole connection attempt), ``keepalives_idle``/``_interval``/``_count``,
  ``tcp_user_timeout`` (milliseconds, Linux's TCP_USER_TIMEOUT).
* Linux tcp(7): TCP_USER_TIMEOUT is "the maximum amount of time that transmitted data may
  remain unacknowledged ... before TCP will forcibly close the connection"; with
  keepalives it "will override keepalive to determine when to close a connection due to
  keepalive failure". Linux counts it from the first retransmission by the retransmission
  timer (``retrans_stamp``, net/ipv4/tcp_timer.c), which on the loopback comes 0.4 s after
  the data: a tail-loss probe after 200 ms (RFC 8985 7.2: PTO = 2·SRTT, plus a worst-case
  delayed ACK of 200 ms when one segment is in flight), then Linux's minimum
  retransmission timeout of 200 ms (ip-sysctl: tcp_rto_min_us). A SYN is retransmitted
  first after the initial retransmission timeout of 1 s (RFC 6298 2.1), then 3 s, 7 s…
  after the send, and the user timeout is checked there.
* Keepalives: the first probe after ``keepalives_idle`` seconds without data, then one
  every ``keepalives_interval``; the connection is dropped after ``keepalives_count``
  unanswered probes, or, with ``tcp_user_timeout`` set, at the first probe time at which
  that much time has passed (tcp(7), as above). No probe is sent while data waits for an
  acknowledgement, so keepalives bound only a wait for a reply to data already
  acknowledged.
* PostgreSQL: ``statement_timeout`` and ``lock_timeout`` are counted and enforced by the
  server: a frozen server cannot enforce them, and the error they raise is a reply, which
  a cut network or a peer that never answers does not deliver.
* SQLAlchemy: ``pool_timeout`` (QueuePool), and ``pool_pre_ping``, which on a disconnect
  error opens a new connection once and hands that out instead.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from failspec.conditions import first_line, network_condition_of
from failspec.harness import waiting
from failspec.harness.activity import backends_named
from failspec.harness.faults.server import arm_slow_inserts
from failspec.harness.scenario.application import backend_pid_of

if TYPE_CHECKING:
    from failspec.harness.faults.network import Network
    from failspec.harness.faults.server import ServerFaults
    from failspec.harness.scenario.application import Application
    from failspec.harness.scenario.workspace import Workspace

#: The phases, in the matrix's row order.
OPENING = "the opening of a connection"
PRE_PING = "the pool's test of its idle connection"
STATEMENT = "a statement's wait for its reply"
COMMIT = "COMMIT's wait for its reply"
POOL = "the wait for a connection from the pool"
LOCK = "the wait for a lock"
PHASES = (OPENING, PRE_PING, STATEMENT, COMMIT, POOL, LOCK)

#: The kinds of silence, by what a user sees, in the matrix's column order: the first is
#: no fault at all (the server is only slow, a lock is held, the pool is busy).
NOTHING = "nothing fails"
FROZEN = "the server freezes"
CUT = "the network is cut"
SILENT_PEER = "the network accepts but never answers"
GONE = "the server goes away"
ENDED = "the server ends the session"
FAULTS = (NOTHING, FROZEN, CUT, SILENT_PEER, GONE, ENDED)

#: How much later than its data Linux's first retransmission comes on the loopback, from
#: which it counts TCP_USER_TIMEOUT (s): a tail-loss probe after 200 ms (RFC 8985), then
#: the minimum retransmission timeout of 200 ms (Linux's tcp_rto_min_us).
FIRST_RETRANSMISSION = 0.4
#: When TCP retransmits an unanswered SYN, in seconds after the first: the initial
#: retransmission timeout of 1 s (RFC 6298), doubled each time.
SYN_RETRANSMISSIONS = (1.0, 3.0, 7.0, 15.0, 31.0, 63.0)
#: "At once": an answer (a refusal, a reset, an error), not a wait (s).
AT_ONCE = 0.5
#: How far a measured time may lie from its bound: 20 % either way.
TOLERANCE = 0.2
#: How much later still a wait may end, times ``timeout_scale`` (s): on a machine whose
#: every core is busy (a parallel run, ./run-spec --jobs, beside other work), the thread a
#: timeout wakes runs late, by a delay of its own, not a share of the bound: the pool
#: timeout's 0.5 s wait ended after 0.66 s in one run of six at load average 3.9 on 2
#: cores, where 20 % allows 0.60 s. A bound that does not end the wait is still found:
#: the next thing that would end it comes seconds later (the data layer's deadline, the
#: fault's healing), and every bound's lower side is unchanged.
LATENESS = 0.25
#: How long the server works on the statement a silence falls into (s): longer than any
#: bound, and ended by the statement timeout where the server is not frozen.
SLOW_STATEMENT = 5.0


@dataclass(frozen=True)
class Settings:
    """The application's settings that can end a wait, as it really used them (s; None
    where it sets none)."""

    connect_timeout: float | None
    tcp_user_timeout: float | None
    keepalives: tuple[float, float, int] | None  # idle, interval, count
    statement_timeout: float | None
    lock_timeout: float | None
    pool_timeout: float | None
    deadline: float | None

    @classmethod
    def of(cls, app: Application) -> Settings:
        """Read them from the application's settings in use (``settings_in_use``): its
        libpq connection arguments, its server settings (``-c`` options) and its pool."""
        used = app.settings_in_use
        args = used.connect_args
        keepalives = None
        if args.get("keepalives"):
            keepalives = (
                float(args["keepalives_idle"]),
                float(args["keepalives_interval"]),
                int(args["keepalives_count"]),
            )
        tut = args.get("tcp_user_timeout")
        return cls(
            connect_timeout=_float(used.connect_timeout),
            tcp_user_timeout=tut / 1000 if tut else None,
            keepalives=keepalives,
            statement_timeout=_ms(used.server_settings.get("statement_timeout")),
            lock_timeout=_ms(used.server_settings.get("lock_timeout")),
            pool_timeout=used.pool_timeout,
            deadline=_float(used.request_deadline),
        )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _ms(value: str | None) -> float | None:
    return None if value is None else int(value.removesuffix("ms")) / 1000


def _needs(value: float | None, setting: str) -> float:
    if value is None:
        raise AssertionError(f"the application sets no {setting}: nothing of it can bound a wait")
    return value


def _on_data(s: Settings) -> float:
    return FIRST_RETRANSMISSION + _needs(s.tcp_user_timeout, "tcp_user_timeout")


def _on_connect(s: Settings) -> float:
    limit = _needs(s.tcp_user_timeout, "tcp_user_timeout")
    return next(t for t in SYN_RETRANSMISSIONS if t >= limit)


def _keepalives(s: Settings) -> float:
    if s.keepalives is None:
        raise AssertionError("the application sends no TCP keepalives")
    idle, interval, count = s.keepalives
    if s.tcp_user_timeout is None:
        return idle + interval * count
    probes = 1  # the first probe time, after one unanswered probe, at least the user timeout
    while idle + interval * probes < s.tcp_user_timeout:
        probes += 1
    return idle + interval * probes


@dataclass(frozen=True)
class Bound:
    """What ends a wait: its words in the specification, the setting, and how long it
    takes given the application's settings (s)."""

    words: str
    setting: str
    seconds: Callable[[Settings], float]
    #: The condition the request fails with when this bound ends it (None: it varies, an
    #: answer at once: refused, lost, or a success).
    condition: str | None


BOUNDS = {
    b.words: b
    for b in (
        Bound("the connect timeout", "connect_timeout",
              lambda s: _needs(s.connect_timeout, "connect_timeout"), "connect_timeout"),
        Bound("the TCP user timeout", "tcp_user_timeout", _on_data, "network_timeout"),
        Bound("the TCP user timeout on connecting", "tcp_user_timeout", _on_connect,
              "network_timeout"),
        Bound("the TCP user timeout, then again on reconnecting", "tcp_user_timeout",
              lambda s: _on_data(s) + _on_connect(s), "network_timeout"),
        Bound("the TCP keepalives", "keepalives", _keepalives, "network_timeout"),
        Bound("the statement timeout", "statement_timeout",
              lambda s: _needs(s.statement_timeout, "statement_timeout"), "query_canceled"),
        Bound("the lock timeout", "lock_timeout",
              lambda s: _needs(s.lock_timeout, "lock_timeout"), "lock_not_available"),
        Bound("the pool timeout", "pool_timeout",
              lambda s: _needs(s.pool_timeout, "pool_timeout"), "pool_timeout"),
        Bound("the data layer's deadline", "request_deadline",
              lambda s: _needs(s.deadline, "request deadline"), "deadline_exceeded"),
        Bound("an answer at once", "none", lambda s: 0.0, None),
    )
}  # fmt: skip


#: The settings of the client (not the data layer's deadline) that can end a wait.
CLIENT_SETTINGS = (
    "connect_timeout", "tcp_user_timeout", "keepalives", "statement_timeout", "lock_timeout",
    "pool_timeout",
)  # fmt: skip


def longest_client_bound(settings: Settings) -> tuple[str, float]:
    """The bound that ends a wait last among those the application's own settings give
    (every :data:`BOUNDS` entry of a setting in :data:`CLIENT_SETTINGS` that it sets): its
    words and its seconds. A wait still going on ``TOLERANCE`` after it was ended by none
    of them. Raises ValueError if the application sets none of them."""
    given = []
    for b in BOUNDS.values():
        if b.setting in CLIENT_SETTINGS:
            try:
                given.append((b.words, b.seconds(settings)))
            except AssertionError:  # a setting the application does not set
                continue
    if not given:
        raise ValueError("the application sets nothing that bounds a wait")
    return max(given, key=lambda words_seconds: words_seconds[1])


@dataclass
class Cell:
    """One phase under one silence, as the run measured it."""

    bound: str  # the bound's words
    setting: str  # the setting that ends the wait ("none": an answer, not a wait)
    expected_s: float
    measured_s: float
    outcome: str  # the condition it failed with, or "succeeded"
    within: bool  # measured within TOLERANCE of expected (or under AT_ONCE)
    #: No setting of the client ended the wait: it lasted past the longest bound any of
    #: them gives (plus TOLERANCE), and the data layer's deadline ended it.
    unbounded: bool = False
    #: Where the scenario that measured it is ("features/x.feature:LINE").
    scenario: str = ""
    #: How much later than 20 % past the bound it may end (s): LATENESS times timeout_scale.
    late_s: float = 0.0

    @classmethod
    def measure(
        cls,
        bound: Bound,
        settings: Settings,
        elapsed: float,
        outcome: str,
        *,
        unbounded: bool = False,
        scenario: str = "",
        scale: float = 1.0,
    ) -> Cell:
        """The cell for a wait that took ``elapsed`` seconds and ended as ``outcome``,
        ``bound`` being what the specification says ends it. ``unbounded``: the
        specification says no client setting bounds it (then ``bound`` is the data
        layer's deadline; :func:`longest_client_bound` says how long it must last).
        ``scale``: the run's ``timeout_scale``, which multiplies :data:`LATENESS`."""
        expected = bound.seconds(settings)
        late = LATENESS * scale
        if expected == 0:
            within = elapsed <= AT_ONCE
        else:
            low, high = (1 - TOLERANCE) * expected, (1 + TOLERANCE) * expected + late
            within = low <= elapsed <= high
        return cls(bound.words, bound.setting, round(expected, 3), round(elapsed, 3), outcome,
                   within, unbounded, scenario, round(late, 3))  # fmt: skip

    def describe(self) -> str:
        if self.expected_s == 0:
            ended = f"ended after {self.measured_s:.2f} s ({self.outcome})"
            return f"{ended}: at once is under {AT_ONCE} s"
        low = (1 - TOLERANCE) * self.expected_s
        high = (1 + TOLERANCE) * self.expected_s + self.late_s
        unbounded = "unbounded by any client setting; " if self.unbounded else ""
        return (
            f"{unbounded}ended after {self.measured_s:.2f} s ({self.outcome}); {self.bound} "
            f"({self.setting}) ends it after {self.expected_s:.2f} s: {low:.2f}-{high:.2f} s"
        )


def outcome_of(error: BaseException | None) -> str:
    """How a request ended, for a cell: "succeeded", or its condition name
    (``failspec.conditions.network_condition_of``)."""
    if error is None:
        return "succeeded"
    return network_condition_of(error) or f"unnamed: {first_line(error)}"


class HangMatrix:
    """The run's cells, by phase and silence (the last measurement of a cell wins)."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[str, Cell]] = {}

    def record(self, phase: str, fault: str, cell: Cell) -> None:
        self.cells.setdefault(phase, {})[fault] = cell

    def as_json(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{phase: {silence: cell}}, in :data:`PHASES` and :data:`FAULTS` order."""
        return {
            phase: {f: asdict(row[f]) for f in FAULTS if f in row}
            for phase in PHASES
            if (row := self.cells.get(phase))
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def unacknowledged(fd: int) -> int:
    """How many segments a TCP socket (by its file descriptor) has sent that its peer has
    not acknowledged yet: ``tcpi_unacked`` of Linux's TCP_INFO (linux/tcp.h: seven bytes
    and a byte of bit fields, then the 32-bit rto, ato, snd_mss, rcv_mss, unacked)."""
    with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:  # a duplicate
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", info, 24)[0]


class Hang:
    """One cell of the matrix in one scenario: sets up its phase, inflicts its silence at
    the moment the phase waits, and measures the wait.

    The silence falls before the request for the phases where nothing is open yet or
    nothing is sent (opening, the pool's test, the pool), just before COMMIT is sent, and
    for a statement or a lock wait once the server shows the request working or waiting
    (``pg_stat_activity``), so the request is in flight when it falls.
    """

    def __init__(
        self,
        app: Application,
        workspace: Workspace,
        network: Network,
        server_faults: ServerFaults,
        *,
        phase: str,
        fault: str,
        timeout: float,
    ) -> None:
        if phase not in PHASES or fault not in FAULTS:
            raise ValueError(f"no cell {phase!r} x {fault!r}: see failspec.harness.faults.hangs")
        self.app, self.workspace, self.network = app, workspace, network
        self.server_faults = server_faults
        self.phase, self.fault = phase, fault
        self.timeout = timeout
        self._watcher: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._stray: list[int] = []
        self._holder: sa.Connection | None = None
        self._held: sa.Connection | None = None
        #: The account the request pays to (the lock phase locks it first).
        self.account = "erin"

    def arm(self) -> None:
        """Set the phase up and arm the silence for it."""
        phase = self.phase
        if phase == PRE_PING:
            self.app.use_pool(pool_pre_ping=True)
        if phase == POOL:
            # Another request of the application holds the pool's only connection.
            self._held = self.app.engine.connect()
            self._inflict(self._held.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            return
        if phase != OPENING:
            self.app.idle_connection_in_pool()
        if phase == PRE_PING:
            self._inflict(self.app.idle_pid)
        elif phase == OPENING:
            self._inflict(None)
        elif phase == COMMIT:
            self.app.at_next_commit.append(self._before_commit)
        elif phase == STATEMENT:
            arm_slow_inserts(self.workspace, SLOW_STATEMENT)
            self._watch("Timeout", "PgSleep")
        else:  # waiting for a lock: another client holds the account's row
            self._hold_lock(self.account)
            self._watch("Lock", None)

    def _before_commit(self, conn: Any) -> None:
        self._inflict(backend_pid_of(conn))

    def _hold_lock(self, account: str) -> None:
        engine = self.workspace.engine(label="another client", poolclass=sa.pool.NullPool)
        self._holder = engine.connect()
        self._holder.execute(
            sa.text("SELECT name FROM accounts WHERE name = :n FOR NO KEY UPDATE"), {"n": account}
        ).all()

    def _watch(self, event_type: str, event: str | None) -> None:
        """Inflict the silence once the application's connection waits on ``event`` in the
        server, and the server's machine has acknowledged all it sent (a delayed ACK, up to
        200 ms on Linux, would otherwise leave the request unacknowledged: a different
        cell)."""
        if self.fault == NOTHING:
            return
        sockets: list[int] = []  # the file descriptor of the connection the request uses
        sa.event.listen(
            self.app.engine, "checkout", lambda dbapi, *_: sockets.append(dbapi.fileno())
        )
        name = self.workspace.application_name

        def waiting_pid() -> int | None:
            if not sockets:
                return None
            with self.workspace.run.admin.connect() as conn:
                backends = backends_named(conn, name)
            pid = next((b.pid for b in backends if b.waits_on(event_type, event)), None)
            # Checked after the server shows the request waiting: the request has been
            # sent by then, and only now can "all acknowledged" include it.
            return pid if pid is not None and not unacknowledged(sockets[-1]) else None

        def watch() -> None:
            try:
                pid = waiting.until(waiting_pid, timeout=self.timeout, what=f"the {self.phase}",
                                    interval=0.01)  # fmt: skip
                self._stray.append(pid)
                self._inflict(pid)
            except BaseException as error:  # reported by finish(), on the scenario's thread
                self._failure = error

        self._watcher = threading.Thread(target=watch, name="failspec-hang-watch", daemon=True)
        self._watcher.start()

    def _inflict(self, pid: int | None) -> None:
        fault = self.fault
        if fault == FROZEN:
            self.server_faults.pause()
        elif fault == CUT:
            self.network.go_silent()
        elif fault == SILENT_PEER:
            self.network.accept_but_never_answer()
        elif fault == GONE:
            self.network.proxy.down()
        elif fault == ENDED:
            if pid is None:
                raise ValueError("a session that is not open yet cannot be ended")
            assert self.workspace.terminate(pid), f"server process {pid} was not there to end"

    def finish(self) -> None:
        """Once the request has ended: the silence was inflicted (or why not)."""
        if self._watcher is not None:
            self._watcher.join(self.timeout)
        if self._failure is not None:
            raise AssertionError(f"the silence never fell: {self._failure}")

    def close(self) -> None:
        """Put everything back: the lock holder rolls back; a server process still working
        on the request after the silence ends (its client gone) is ended."""
        if self._watcher is not None:
            self._watcher.join(self.timeout)
        if self.fault == FROZEN:
            self.server_faults.resume()  # before anything below talks to the server
        if self._held is not None:
            self._held.invalidate()  # closed without a reset: the network may still be cut
            self._held.close()
        if self._holder is not None:
            self._holder.close()
        for pid in self._stray:
            if pid in self.workspace.open_backends():
                self.workspace.terminate(pid)
