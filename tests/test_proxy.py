"""The fault proxy: each fault against a tiny echo server, and one against PostgreSQL."""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator

import psycopg2
import pytest

from failspec.harness.faults import network
from failspec.harness.faults.proxy import FaultProxy
from failspec.harness.servers import Server
from failspec.harness.waiting import until

WAIT = 5.0  # deadline for what happens at once on loopback
SILENCE = 0.3  # how long a client watches for an answer that must not come
DELAY = 0.2  # seconds of latency the latency tests inflict


class EchoServer(socketserver.ThreadingTCPServer):
    """Sends back every byte; notes what arrived, when, and how each connection ended."""

    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.received = bytearray()
        self.arrivals: list[float] = []
        self.handled = 0
        self.endings: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,))
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()  # joins the handler threads
        self.thread.join()


class _Echo(socketserver.BaseRequestHandler):
    server: EchoServer

    def handle(self) -> None:
        self.server.handled += 1
        ending = "eof"
        try:
            while data := self.request.recv(65536):
                self.server.arrivals.append(time.monotonic())
                self.server.received += data
                self.request.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            ending = "reset"
        self.server.endings.append(ending)


@pytest.fixture(autouse=True)
def proxy_troubles() -> Iterator[None]:
    """Fail a test in which the proxy or its asyncio loop logged a warning or an error."""
    handler = _Collect(logging.WARNING)
    loggers = [logging.getLogger("asyncio"), logging.getLogger("failspec.proxy")]
    for one in loggers:
        one.addHandler(handler)
    yield
    for one in loggers:
        one.removeHandler(handler)
    assert not handler.records, [record.getMessage() for record in handler.records]


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.stop()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(echo.server_address) as the_proxy:  # type: ignore[arg-type]
        yield the_proxy


@pytest.fixture
def connect(proxy: FaultProxy) -> Iterator[Callable[[], socket.socket]]:
    """Open a client connection through the proxy, once the proxy has accepted it."""
    opened: list[socket.socket] = []

    def open_one() -> socket.socket:
        expected = proxy.connections + 1
        client = socket.create_connection(proxy.address, timeout=WAIT)
        opened.append(client)
        until(lambda: proxy.connections == expected, timeout=WAIT, what="the proxy accepting")
        return client

    yield open_one
    for client in opened:
        client.close()


def receive(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        if not chunk:
            raise EOFError(f"the connection ended after {len(data)} of {size} bytes")
        data += chunk
    return data


def roundtrip(client: socket.socket, data: bytes) -> None:
    client.sendall(data)
    assert receive(client, len(data)) == data


def received_until_reset(client: socket.socket) -> bytes:
    """What arrives before the connection is reset (an end of stream fails the test)."""
    data = b""
    with pytest.raises(ConnectionResetError):
        while chunk := client.recv(65536):
            data += chunk
    return data


def test_forwards_bytes_both_ways_unchanged_and_passes_the_end_of_stream_on(
    proxy: FaultProxy, connect: Callable[[], socket.socket], echo: EchoServer
) -> None:
    client = connect()
    payload = bytes(range(256)) * 256  # 64 KiB: several reads and writes on the way
    for _ in range(8):
        roundtrip(client, payload)

    client.shutdown(socket.SHUT_WR)
    assert client.recv(1) == b""  # the echo server saw the end and closed: so does the client
    until(lambda: proxy.connections == 0, timeout=WAIT, what="the proxy closing")
    assert echo.endings == ["eof"]
    assert "connection #1 closed" in proxy.log_text()


def test_latency_delays_what_the_server_sends_by_at_least_the_delay(
    proxy: FaultProxy, connect: Callable[[], socket.socket]
) -> None:
    client = connect()
    roundtrip(client, b"connected")
    proxy.latency(DELAY * 1000)

    sent = time.monotonic()
    roundtrip(client, b"ping")
    assert time.monotonic() - sent >= DELAY


def test_latency_upstream_delays_what_the_client_sends_before_the_server_sees_it(
    proxy: FaultProxy, connect: Callable[[], socket.socket], echo: EchoServer
) -> None:
    client = connect()
    roundtrip(client, b"connected")
    proxy.latency(DELAY * 1000, direction="upstream")

    sent = time.monotonic()
    roundtrip(client, b"ping")
    assert echo.arrivals[-1] - sent >= DELAY


def test_latency_both_ways_delays_a_round_trip_twice(
    proxy: FaultProxy, connect: Callable[[], socket.socket]
) -> None:
    client = connect()
    roundtrip(client, b"connected")
    proxy.latency(DELAY * 1000, jitter_ms=20, direction="both")

    sent = time.monotonic()
    roundtrip(client, b"ping")
    assert time.monotonic() - sent >= 2 * (DELAY - 0.020)


def test_reset_peer_cuts_open_connections_and_accepts_new_ones(
    proxy: FaultProxy, connect: Callable[[], socket.socket], echo: EchoServer
) -> None:
    clients = [connect(), connect()]
    for client in clients:
        roundtrip(client, b"connected")

    proxy.reset_peer()
    assert proxy.connections == 0
    for client in clients:
        assert received_until_reset(client) == b""
    until(lambda: len(echo.endings) == 2, timeout=WAIT, what="the server seeing both ends")
    assert echo.endings == ["reset", "reset"]

    roundtrip(connect(), b"a new connection")


def test_limit_data_forwards_exactly_n_more_bytes_then_resets_open_and_new_connections(
    proxy: FaultProxy, connect: Callable[[], socket.socket]
) -> None:
    opened = connect()
    roundtrip(opened, b"bytes before the limit do not count")
    proxy.limit_data(10)
    new = connect()

    for client in (opened, new):
        client.sendall(bytes(range(100)))
        assert received_until_reset(client) == bytes(range(10))
    assert proxy.connections == 0


def test_limit_data_upstream_lets_exactly_n_bytes_reach_the_server(
    proxy: FaultProxy, connect: Callable[[], socket.socket], echo: EchoServer
) -> None:
    proxy.limit_data(5, direction="upstream")
    client = connect()

    client.sendall(b"0123456789")
    until(lambda: echo.endings, timeout=WAIT, what="the server seeing the cut")
    assert echo.endings == ["reset"]
    assert echo.received == b"01234"


def test_down_refuses_new_connections_cuts_open_ones_and_up_listens_on_the_same_port(
    proxy: FaultProxy, connect: Callable[[], socket.socket]
) -> None:
    client = connect()
    roundtrip(client, b"connected")
    port = proxy.port

    proxy.down()
    assert received_until_reset(client) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=WAIT)

    proxy.up()
    assert proxy.port == port
    roundtrip(connect(), b"back up")


def test_timeout_forwards_nothing_and_closes_nothing_until_restore(
    proxy: FaultProxy, connect: Callable[[], socket.socket], echo: EchoServer
) -> None:
    held = connect()
    roundtrip(held, b"connected")
    received = bytes(echo.received)

    proxy.timeout()
    new = connect()  # accepted, but not carried on to the server
    for client in (held, new):
        client.sendall(b"anyone?")
    for client in (held, new):
        client.settimeout(SILENCE)
        with pytest.raises(TimeoutError):
            client.recv(1)
    assert echo.received == received
    assert (proxy.connections, echo.handled, echo.endings) == (2, 1, [])

    proxy.restore()
    for client in (held, new):
        client.settimeout(WAIT)
        assert receive(client, 7) == b"anyone?"  # held, not lost


def test_restore_removes_every_fault(
    proxy: FaultProxy, connect: Callable[[], socket.socket]
) -> None:
    proxy.latency(60_000, direction="both")
    proxy.limit_data(1, direction="both")
    proxy.timeout()
    proxy.down()

    proxy.restore()
    client = connect()
    roundtrip(client, bytes(1000))  # within WAIT: no latency, no limit, no silence


def test_close_cuts_even_silent_connections_joins_its_threads_and_frees_its_port() -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    upstream.settimeout(WAIT)
    threads = set(threading.enumerate())
    proxy = FaultProxy(upstream.getsockname()).start()
    client = socket.create_connection(proxy.address, timeout=WAIT)
    server_side, _ = upstream.accept()  # the proxy has connected through
    proxy.timeout()  # a silent connection is cut all the same

    proxy.close()
    proxy.close()
    assert set(threading.enumerate()) == threads
    assert received_until_reset(client) == b""
    server_side.settimeout(WAIT)
    assert received_until_reset(server_side) == b""
    with socket.socket() as same_port:  # no SO_REUSEADDR: fails while any socket holds it
        same_port.bind(proxy.address)
    with pytest.raises(RuntimeError):
        proxy.reset_peer()
    for sock in (client, server_side, upstream):
        sock.close()


def test_a_peer_that_resets_is_passed_on_as_a_reset_to_the_other_side() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as upstream,
        FaultProxy(upstream.getsockname()) as proxy,
    ):
        upstream.settimeout(WAIT)
        pairs = []
        for _ in range(2):
            client = socket.create_connection(proxy.address, timeout=WAIT)
            server_side, _ = upstream.accept()
            server_side.settimeout(WAIT)
            pairs.append((client, server_side))

        for vanishing, other in (pairs[0], pairs[1][::-1]):
            vanishing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            vanishing.close()
            assert received_until_reset(other) == b""
            other.close()
        until(lambda: proxy.connections == 0, timeout=WAIT, what="the proxy letting go")


def test_a_server_that_refuses_makes_the_proxy_reset_the_client() -> None:
    nobody = network.refusing()
    with FaultProxy((nobody.host, nobody.port)) as proxy:
        # The client's kernel completes the TCP handshake with the proxy's listening socket
        # before the proxy accepts and tries the server: the reset can reach the client
        # while connect() is still finishing (it then raises ECONNRESET) or after it.
        received = b""
        with (
            pytest.raises(ConnectionResetError),
            socket.create_connection(proxy.address, timeout=WAIT) as client,
        ):
            while chunk := client.recv(65536):
                received += chunk
        assert received == b""
        until(lambda: proxy.connections == 0, timeout=WAIT, what="the proxy letting go")
        assert f"connection #1 cut: server 127.0.0.1:{nobody.port} unreachable" in (
            proxy.log_text()
        )
    nobody.close()


def test_event_log_tells_every_fault_and_connection_with_its_time(
    proxy: FaultProxy, connect: Callable[[], socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="failspec.proxy")
    roundtrip(connect(), b"connected")
    proxy.latency(5, jitter_ms=1, direction="both")
    proxy.limit_data(1000, direction="upstream")
    proxy.timeout()
    proxy.restore()
    proxy.reset_peer()
    proxy.down()
    proxy.up()

    texts = [event.text for event in proxy.events]
    assert re.fullmatch(r"connection #1 opened from 127\.0\.0\.1:\d+", texts[1])
    assert texts[2:] == [
        "latency: 5 ms ±1 ms both",
        "limit_data: 1000 bytes upstream, 1 connection open",
        "timeout: silent network, 1 connection held",
        "restore: no faults",
        "reset_peer: cut 1 connection",
        "connection #1 cut: reset_peer",
        "down: refusing connections, cut 0 connections",
        f"up: listening on 127.0.0.1:{proxy.port}",
    ]
    times = [event.at for event in proxy.events]
    assert times == sorted(times)
    assert all(re.fullmatch(r"\+\d+\.\d{3}s \S.*", line) for line in proxy.log_text().split("\n"))
    logged = [record.getMessage() for record in caplog.records if record.name == "failspec.proxy"]
    assert any(message.endswith("reset_peer: cut 1 connection") for message in logged)


def test_faults_refuse_arguments_they_cannot_mean() -> None:
    proxy = FaultProxy(("127.0.0.1", 9))
    with pytest.raises(ValueError, match="direction"):
        proxy.latency(10, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        proxy.latency(-1)
    with pytest.raises(ValueError, match="negative"):
        proxy.limit_data(-1)
    with pytest.raises(RuntimeError, match="not running"):
        proxy.timeout()


@pytest.mark.server
def test_reset_peer_makes_the_next_postgresql_query_fail(server: Server) -> None:
    endpoint = server.endpoint
    with FaultProxy((endpoint.host, endpoint.port)) as proxy:
        conn = psycopg2.connect(
            host=proxy.host,
            port=proxy.port,
            user=endpoint.user,
            password=endpoint.password,
            dbname=endpoint.database,
            connect_timeout=5,
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
            proxy.reset_peer()
            with pytest.raises(psycopg2.OperationalError), conn.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            conn.close()
