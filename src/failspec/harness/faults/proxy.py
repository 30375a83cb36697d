"""A TCP proxy on 127.0.0.1 that inflicts network faults on the connections through it.

The harness puts it between the application and PostgreSQL and applies, per scenario, the
faults Toxiproxy's users know by name (https://github.com/Shopify/toxiproxy#toxics):
``latency``, ``reset_peer``, ``limit_data``, ``down``/``up``, ``timeout`` (a silent network)
and ``restore``, which removes them all. Each call returns once its fault is in force. Every
fault and every connection opened, closed or cut goes to an event log (``log_text()``) and to
the ``failspec.proxy`` logger.

Not a library: toxiproxy-python drives Toxiproxy's Go server, which the suite cannot ship, and
the Python proxies on PyPI (toxic-proxy, asynctcpproxy) cannot reset, cut or go silent.

One thread runs an asyncio loop; all of the proxy's state is used on that thread only, and
the public methods hand it their work and wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

logger = logging.getLogger("failspec.proxy")

HOST = "127.0.0.1"
UPSTREAM = "upstream"  # client -> server
DOWNSTREAM = "downstream"  # server -> client
Direction = Literal["upstream", "downstream", "both"]
Address = tuple[str, int]
T = TypeVar("T")

_SOURCE = {UPSTREAM: "client", DOWNSTREAM: "server"}
_DESTINATION = {UPSTREAM: "server", DOWNSTREAM: "client"}
_CHUNK = 65536
# Chunks read ahead per direction; past that the proxy stops reading and TCP pushes back.
_READ_AHEAD = 16
_CALL_TIMEOUT = 10.0
# Out of descriptors, accept() fails while the listener stays readable: pause as asyncio does.
_ACCEPT_RETRY = 1.0
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN

# What a receiver hands its sender: (loop time received, data, b"" at the end, or the error).
_Chunk = tuple[float, bytes | OSError]


@dataclass(frozen=True)
class ProxyEvent:
    """One entry of the event log: seconds since start() and what happened."""

    at: float
    text: str

    def __str__(self) -> str:
        return f"+{self.at:.3f}s {self.text}"


class FaultProxy:
    """Forwards connections on 127.0.0.1:``port`` (0: a free port) to ``upstream``.

    ``upstream`` is ``(host, port)``, or a function returning one that is asked at each new
    connection, so a server whose address changes on restart is followed.

    Where the server refuses or cannot be reached, the client's connection is reset. It
    cannot be refused: the kernel completes the client's TCP handshake on the proxy's
    listening socket before the proxy accepts and tries the server. So the client sees
    ECONNRESET, at its first read or write, or already from ``connect()`` when the reset
    arrives before that returns (a connect with a timeout polls, then reads SO_ERROR).
    """

    def __init__(self, upstream: Address | Callable[[], Address], *, port: int = 0) -> None:
        self.host = HOST
        self.port = port
        self._upstream: Callable[[], Address] = upstream if callable(upstream) else lambda: upstream
        self._for = "" if callable(upstream) else f" for {upstream[0]}:{upstream[1]}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._started = 0.0
        self._events: list[ProxyEvent] = []
        self._events_lock = threading.Lock()
        # Used on the loop's thread only:
        self._listener: socket.socket | None = None
        self._listening = False
        self._accept_retry: asyncio.TimerHandle | None = None
        self._conns: set[_Connection] = set()
        self._numbers = itertools.count(1)
        self._latency = _no_latency()
        self._limits: dict[str, int | None] = {UPSTREAM: None, DOWNSTREAM: None}
        self._flowing = asyncio.Event()  # cleared while the network is silent
        self._flowing.set()

    # -- control (any thread) ---------------------------------------------------------

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    @property
    def connections(self) -> int:
        """Client connections open now (accepted and not yet closed or cut)."""
        return len(self._conns)

    @property
    def events(self) -> list[ProxyEvent]:
        with self._events_lock:
            return list(self._events)

    def note(self, text: str) -> None:
        """Add an event of the caller's to the log (e.g. a fault applied around the proxy)."""
        self._record(text)

    def log_text(self) -> str:
        """The event log, one ``+0.012s what`` line per event."""
        return "\n".join(str(event) for event in self.events)

    def start(self) -> FaultProxy:
        """Listen and forward; returns the proxy, whose ``host`` and ``port`` are now known."""
        if self._loop is not None:
            raise RuntimeError("a proxy starts once")
        self._listener = _bind(self.port)
        self.port = self._listener.getsockname()[1]
        self._started = time.monotonic()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name=f"failspec-proxy-{self.port}", daemon=True
        )
        self._thread.start()

        async def apply() -> None:
            self._listen()
            self._record(f"start: listening on {self.host}:{self.port}{self._for}")

        self._on_loop(apply)
        return self

    def latency(self, ms: float, jitter_ms: float = 0, direction: Direction = "downstream") -> None:
        """Delay data going ``direction`` by ``ms`` milliseconds, give or take ``jitter_ms``."""
        if ms < 0 or jitter_ms < 0:
            raise ValueError("latency and jitter are milliseconds, not negative")
        directions = _directions(direction)

        async def apply() -> None:
            for one in directions:
                self._latency[one] = (ms / 1000, jitter_ms / 1000)
            self._record(f"latency: {ms:g} ms ±{jitter_ms:g} ms {direction}")

        self._on_loop(apply)

    def reset_peer(self) -> None:
        """Cut every open connection now with a TCP RST to both sides; new ones are accepted."""

        async def apply() -> None:
            conns = list(self._conns)
            self._record(f"reset_peer: cut {_connections(len(conns))}")
            await self._cut(conns, "reset_peer")

        self._on_loop(apply)

    def limit_data(self, nbytes: int, direction: Direction = "downstream") -> None:
        """Let each connection, open or new, forward ``nbytes`` more bytes going ``direction``,
        then cut it (for 0: at its next data)."""
        if nbytes < 0:
            raise ValueError("limit_data needs a number of bytes, not a negative one")
        directions = _directions(direction)

        async def apply() -> None:
            for one in directions:
                self._limits[one] = nbytes
                for conn in self._conns:
                    conn.budget[one] = nbytes
            self._record(
                f"limit_data: {nbytes} bytes {direction}, {_connections(len(self._conns))} open"
            )

        self._on_loop(apply)

    def down(self) -> None:
        """Refuse new connections (ECONNREFUSED) and cut the open ones; the port stays ours."""

        async def apply() -> None:
            self._stop_listening(keep_port=True)
            conns = list(self._conns)
            self._record(f"down: refusing connections, cut {_connections(len(conns))}")
            await self._cut(conns, "down")

        self._on_loop(apply)

    def up(self) -> None:
        """Listen again, on the same port, after down()."""

        async def apply() -> None:
            self._listen()
            self._record(f"up: listening on {self.host}:{self.port}")

        self._on_loop(apply)

    def timeout(self) -> None:
        """Go silent: accept connections but forward nothing either way and close nothing.

        Data is held, not lost: restore() delivers it. Toxiproxy's timeout with timeout=0.
        """

        async def apply() -> None:
            self._flowing.clear()
            self._record(f"timeout: silent network, {_connections(len(self._conns))} held")

        self._on_loop(apply)

    def restore(self) -> None:
        """Remove every fault: forward at once, without limits, and listen. Cuts stay cut."""

        async def apply() -> None:
            self._latency = _no_latency()
            self._limits = {UPSTREAM: None, DOWNSTREAM: None}
            for conn in self._conns:
                conn.budget = dict(self._limits)
            self._flowing.set()
            self._listen()
            self._record("restore: no faults")

        self._on_loop(apply)

    def close(self) -> None:
        """Cut every connection (RST), close every socket and join the thread. Idempotent."""
        if self._loop is None or self._thread is None or self._closed:
            return

        async def apply() -> None:
            self._stop_listening(keep_port=False)
            conns = list(self._conns)
            self._record(f"close: cut {_connections(len(conns))}")
            await self._cut(conns, "close")

        try:
            self._on_loop(apply)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self if self._loop is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _on_loop(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self._loop is None or self._closed:
            raise RuntimeError("the proxy is not running: start() it, and not after close()")
        return asyncio.run_coroutine_threadsafe(work(), self._loop).result(_CALL_TIMEOUT)

    def _run_loop(self) -> None:
        assert self._loop is not None
        self._loop.run_forever()
        # getaddrinfo ran in the loop's default executor: join its threads too.
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()

    def _record(self, text: str) -> None:
        event = ProxyEvent(time.monotonic() - self._started, text)
        with self._events_lock:
            self._events.append(event)
        logger.info("proxy %s:%d %s", self.host, self.port, event)

    # -- the loop's thread ------------------------------------------------------------

    def _listen(self) -> None:
        if self._listening:
            return
        assert self._listener is not None
        self._listener.listen(128)
        asyncio.get_running_loop().add_reader(self._listener, self._accept)
        self._listening = True

    def _stop_listening(self, *, keep_port: bool) -> None:
        assert self._listener is not None
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        if self._listening:
            asyncio.get_running_loop().remove_reader(self._listener)
            self._listening = False
        self._listener.close()
        # Bound but not listening, a socket keeps the port: connecting to it is refused,
        # and no other socket (a client's ephemeral port) can take it before up().
        self._listener = _bind(self.port) if keep_port else None

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                loop = asyncio.get_running_loop()
                loop.remove_reader(self._listener)
                self._accept_retry = loop.call_later(_ACCEPT_RETRY, self._resume_accepting)
                self._record(f"accept failed ({error.strerror}): retrying in {_ACCEPT_RETRY:g} s")
                return
            conn = _Connection(self, next(self._numbers), client)
            self._conns.add(conn)
            self._record(f"connection #{conn.number} opened from {peer[0]}:{peer[1]}")
            conn.task = asyncio.get_running_loop().create_task(conn.run())
            conn.task.add_done_callback(conn.finished)

    def _resume_accepting(self) -> None:
        self._accept_retry = None
        assert self._listener is not None  # _stop_listening cancels the retry before closing
        asyncio.get_running_loop().add_reader(self._listener, self._accept)

    async def _cut(self, conns: list[_Connection], reason: str) -> None:
        for conn in conns:
            conn.cut(reason)
        # Each task's done callback closes its sockets before gather wakes us up.
        await asyncio.gather(*(conn.task for conn in conns), return_exceptions=True)

    def _delay(self, direction: str) -> float:
        latency, jitter = self._latency[direction]
        return max(0.0, latency + random.uniform(-jitter, jitter))


class _Connection:
    """One client connection and, once reached, its connection to the server."""

    task: asyncio.Task[None]

    def __init__(self, proxy: FaultProxy, number: int, client: socket.socket) -> None:
        self.proxy = proxy
        self.number = number
        self.client = client
        self.sockets = [client]  # every socket of this connection, closed by finished()
        client.setblocking(False)
        _no_delay(client)
        #: Bytes each direction may still forward before the cut (None: no limit).
        self.budget = dict(proxy._limits)
        self.cut_reason: str | None = None

    def cut(self, reason: str) -> None:
        """End the connection with a RST to both sides, once its tasks have stopped."""
        if self.cut_reason is None:
            self.cut_reason = reason
        if self.task is not asyncio.current_task():
            self.task.cancel()

    async def run(self) -> None:
        await self.proxy._flowing.wait()  # a silent network does not carry the handshake either
        host, port = self.proxy._upstream()
        try:
            server = await self._connect(host, port)
        except OSError as error:
            self.cut(f"server {host}:{port} unreachable ({error.strerror or error})")
            return
        upstream: asyncio.Queue[_Chunk] = asyncio.Queue(_READ_AHEAD)
        downstream: asyncio.Queue[_Chunk] = asyncio.Queue(_READ_AHEAD)
        # Reading and sending apart: data read while earlier data waits out a latency is
        # delayed from when it arrived, not from when the earlier data left.
        await asyncio.gather(
            self._receive(self.client, upstream),
            self._send(UPSTREAM, upstream, server),
            self._receive(server, downstream),
            self._send(DOWNSTREAM, downstream, self.client),
        )

    async def _connect(self, host: str, port: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        error = OSError(f"no address for {host}")
        for family, kind, proto, _, address in await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        ):
            server = socket.socket(family, kind, proto)
            self.sockets.append(server)
            server.setblocking(False)
            _no_delay(server)
            try:
                await loop.sock_connect(server, address)
            except OSError as failed:
                error = failed
            else:
                return server
        raise error

    async def _receive(self, source: socket.socket, queue: asyncio.Queue[_Chunk]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data: bytes | OSError
            try:
                data = await loop.sock_recv(source, _CHUNK)
            except OSError as error:
                data = error
            await queue.put((loop.time(), data))
            if isinstance(data, OSError) or not data:
                return

    async def _send(self, direction: str, queue: asyncio.Queue[_Chunk], to: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        flowing = self.proxy._flowing
        while True:
            received, data = await queue.get()
            await flowing.wait()
            wait = received + self.proxy._delay(direction) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                await flowing.wait()  # silenced during the delay: hold this data too
            if isinstance(data, OSError):
                self.cut(f"{_SOURCE[direction]}: {data.strerror or data}")
                return
            try:
                if not data:
                    to.shutdown(socket.SHUT_WR)  # pass the end of the stream on
                    return
                budget = self.budget[direction]
                if budget is not None:
                    data = data[:budget]
                    self.budget[direction] = budget - len(data)
                await loop.sock_sendall(to, data)  # returns once the kernel has it all
            except OSError as error:
                self.cut(f"{_DESTINATION[direction]}: {error.strerror or error}")
                return
            if self.budget[direction] == 0:
                self.cut(f"limit_data reached {direction}")
                return

    def finished(self, task: asyncio.Task[None]) -> None:
        """Close the sockets: only now has asyncio stopped watching them."""
        error = None if task.cancelled() else task.exception()
        if error is not None:  # a bug in the proxy, not a network event: keep it visible
            logger.error("proxy connection #%d failed", self.number, exc_info=error)
            self.cut_reason = self.cut_reason or f"proxy error {error!r}"
        # Counted and logged first: a peer that saw the end finds it in both.
        self.proxy._conns.discard(self)
        ending = f"cut: {self.cut_reason}" if self.cut_reason is not None else "closed"
        self.proxy._record(f"connection #{self.number} {ending}")
        for sock in self.sockets:
            if self.cut_reason is not None:
                # BSDs refuse options on a socket the peer has reset; it needs no RST then.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            sock.close()


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # The same port again after down(), while closed connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _no_delay(sock: socket.socket) -> None:
    # Forward each chunk at once: Nagle would hold small writes (PostgreSQL's messages),
    # adding delay, and a reset right after them would discard them unsent.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _directions(direction: str) -> tuple[str, ...]:
    if direction == "both":
        return (UPSTREAM, DOWNSTREAM)
    if direction in (UPSTREAM, DOWNSTREAM):
        return (direction,)
    raise ValueError(f"direction is 'upstream', 'downstream' or 'both', not {direction!r}")


def _no_latency() -> dict[str, tuple[float, float]]:
    return {UPSTREAM: (0.0, 0.0), DOWNSTREAM: (0.0, 0.0)}


def _connections(count: int) -> str:
    return f"{count} connection" if count == 1 else f"{count} connections"
