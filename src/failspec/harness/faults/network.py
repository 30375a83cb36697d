"""The network between the application and the server, and how it fails.

* ``DeadAddress``: a port on 127.0.0.1 where nobody listens, or nobody answers.
* ``Network``: a scenario's fault proxy (``failspec.harness.faults.proxy``) in front of the server.
* ``PacketLoss``: a network partition on one loopback port, both directions (root and
  iptables only).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

from sqlalchemy.engine import URL

from failspec.harness.faults.healing import HEAL_AFTER, Healer
from failspec.harness.faults.packet_filter import COMMENT, iptables, reap_stale_rules
from failspec.harness.faults.proxy import FaultProxy
from failspec.harness.servers import Server


class DeadAddress:
    """A port on 127.0.0.1 held by the suite: bound but not listening (connections are
    refused), or listening without ever accepting (connections hang in the startup
    handshake until the client's connect timeout)."""

    def __init__(self, *, answers_handshake: bool) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        if answers_handshake:
            self.socket.listen(8)  # the kernel completes the TCP handshake; nobody reads
        self.host, self.port = self.socket.getsockname()

    def close(self) -> None:
        self.socket.close()


def refusing() -> DeadAddress:
    return DeadAddress(answers_handshake=False)


def silent() -> DeadAddress:
    return DeadAddress(answers_handshake=True)


class PacketLoss:
    """A network partition on the loopback: every packet to or from one port is dropped.

    Both directions, acknowledgements included, as when a cable is cut or a firewall
    drops the flow: a request the server already has gets no reply, and a probe or a
    retransmission gets no acknowledgement. So the client's TCP user timeout
    (``tcp_user_timeout``: data left unacknowledged) and its TCP keepalives (``keepalives*``:
    an idle connection whose probes go unanswered) notice it, which neither does for the
    fault proxy's ``timeout``, whose kernel still acknowledges (Linux tcp(7):
    TCP_USER_TIMEOUT, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT).

    Two rules on ``lo`` (``--dport`` for packets towards the port, ``--sport`` for those
    from it), added together and removed together; they need root and iptables, and
    each names this process, so those a killed run left behind are removed by the next
    run (``packet_filter.reap_stale_rules``).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.active = False
        self._healer = Healer()
        comment = f"{COMMENT}{os.getpid()}"
        self._rules = [
            ["INPUT", "-i", "lo", "-p", "tcp", way, str(port),
             "-m", "comment", "--comment", comment, "-j", "DROP"]
            for way in ("--dport", "--sport")
        ]  # fmt: skip

    @staticmethod
    def unavailable() -> str | None:
        """Why packets cannot be dropped on this machine, or None if they can."""
        if os.geteuid() != 0:
            return "dropping packets needs root (iptables)"
        if shutil.which("iptables") is None:
            return "dropping packets needs iptables, which is not installed"
        if iptables("-S", "INPUT").returncode != 0:
            return "iptables does not work here"
        return None

    def start(self) -> None:
        """Drop every packet to and from the port, until :meth:`stop` (or ``HEAL_AFTER``
        seconds: a request that nothing else bounds then completes late, and its scenario
        fails instead of hanging the run)."""
        with self._healer.lock:
            reap_stale_rules()
            added = []
            try:
                for rule in self._rules:
                    self._check(iptables("-I", *rule))
                    added.append(rule)
            except RuntimeError:
                for rule in added:  # half a partition is no partition: none or both
                    iptables("-D", *rule)
                raise
            self.active = True
            self._healer.arm(self.stop)

    def stop(self) -> None:
        """Let packets through again (idempotent; a failed delete raises and is retried
        by the next call)."""
        with self._healer.lock:
            self._healer.cancel()
            if self.active:
                for rule in self._rules:
                    if iptables("-C", *rule).returncode == 0:
                        self._check(iptables("-D", *rule))
                self.active = False  # only once the rules are gone

    @staticmethod
    def _check(done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != 0:
            raise RuntimeError(f"iptables failed: {done.stderr.strip()}")


class Network:
    """The network between the application and the server in one scenario: a fault proxy
    on 127.0.0.1 that follows the server (also to a new port after a restart), and, where
    the machine allows, real packet loss on the proxy's port."""

    def __init__(self, server: Server) -> None:
        endpoint = lambda: (server.endpoint.host, server.endpoint.port)  # noqa: E731
        self.server = server
        self.proxy = FaultProxy(endpoint).start()
        self.packet_loss = PacketLoss(self.proxy.port)
        self._healer = Healer()

    def url(self) -> URL:
        """The server's URL, through the proxy: libpq connects to the proxy's address
        (``hostaddr``) and port, and keeps the server's host name for what it is used for
        (``sslmode=verify-full`` checks the server's certificate against it; libpq docs,
        "Parameter Key Words": hostaddr)."""
        url = self.server.endpoint.url(port=self.proxy.port)
        return url.update_query_dict({"hostaddr": self.proxy.host})

    def go_silent(self) -> None:
        """A network partition: drop every packet between the application and the proxy,
        both ways, acknowledgements included."""
        self.packet_loss.start()
        self.proxy.note("packet loss: every packet to and from the proxy is dropped")

    def accept_but_never_answer(self) -> None:
        """A peer that acknowledges but never answers: the proxy forwards nothing either
        way (Toxiproxy's timeout) while its kernel still accepts and acknowledges; healed
        after ``HEAL_AFTER``."""
        self.stall(HEAL_AFTER)

    def stall(self, seconds: float) -> None:
        """Carry nothing either way for ``seconds``, then everything held (Toxiproxy's
        timeout, removed after that long)."""
        self.proxy.timeout()
        self._healer.arm(self.proxy.restore, seconds)

    def recover(self) -> None:
        if self.packet_loss.active:
            self.packet_loss.stop()
            self.proxy.note("packet loss ended")
        self.proxy.restore()

    def log_text(self) -> str:
        return self.proxy.log_text()

    def close(self) -> None:
        self._healer.cancel()
        try:
            self.packet_loss.stop()
        finally:
            self.proxy.close()
