"""Packet-filter rules a killed run left behind are removed when the next run starts."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from failspec.harness import processes, servers, waiting
from failspec.harness.faults import hangs, packet_filter
from failspec.harness.faults.network import PacketLoss

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(PacketLoss.unavailable() is not None, reason=str(PacketLoss.unavailable())),
]

ROOT = Path(__file__).resolve().parent.parent
#: A scenario that passes, in a feature set run with the suite's own hooks.
FIXTURE = ROOT / "tests" / "fixtures" / "features" / "run.feature"

HOLDER = """
import sys
from failspec.harness.faults.network import PacketLoss
PacketLoss(int(sys.argv[1])).start()
print("dropping", flush=True)
sys.stdin.read()
"""


def rules_for(port: int) -> list[str]:
    """The suite's packet-loss rules on ``port`` (both ways), as ``iptables -S`` prints them."""
    listed = packet_filter.iptables("-S", "INPUT").stdout.splitlines()
    ours = [r for r in listed if packet_filter.COMMENT in r]
    return [r for r in ours if f"--dport {port} " in r or f"--sport {port} " in r]


def next_run_starts(server: servers.Server, reports: Path) -> None:
    """A run of the suite, with its real hooks, on ``server`` (one scenario that passes)."""
    url = server.endpoint.url().render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-m", "behave", f"{FIXTURE}:3", "-D", "backend=url",
         "--junit-directory", str(reports / "junit")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DATABASE_URL": url},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def owned_port() -> Iterator[int]:
    """A loopback port this test holds, so the rules it adds there hit nobody else's."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        try:
            yield port
        finally:
            for rule in rules_for(port):
                packet_filter.iptables("-D", *shlex.split(rule)[1:])


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_a_packet_loss_rule_left_by_a_killed_run_is_removed_when_the_next_run_starts(
    owned_port, reaped, server, tmp_path
):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(owned_port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "dropping\n"
        # (Checked while its process runs: once it is dead, any run starting on this
        # machine may remove the rule.)
        assert len(rules_for(owned_port)) == 2  # towards the port and from it
        holder.send_signal(signal.SIGKILL)
        if reaped:
            holder.wait()
        else:  # its parent (this process) has not reaped it yet
            waiting.until(lambda: processes.is_zombie(holder.pid), timeout=10, what="zombie")

        next_run_starts(server, tmp_path)

        assert rules_for(owned_port) == []
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()


def test_the_rule_of_a_run_still_running_stays(owned_port):
    mine = PacketLoss(owned_port)
    mine.start()
    try:
        packet_filter.reap_stale_rules()
        assert len(rules_for(owned_port)) == 2
    finally:
        mine.stop()
    assert rules_for(owned_port) == []


def test_packet_loss_cuts_both_ways_acknowledgements_included(owned_port):
    """A partition, not a one-way loss: a connection opened before the loss gets no reply
    and no acknowledgement, so data sent into it stays unacknowledged, and nothing sent
    from the port's side arrives."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        loss = PacketLoss(port)
        loss.start()
        try:
            server.sendall(b"reply")  # from the port: dropped (--sport)
            client.sendall(b"request")  # towards the port: dropped (--dport), never acked
            client.settimeout(0.3)
            with pytest.raises(TimeoutError):
                client.recv(5)
            assert hangs.unacknowledged(client.fileno()) == 1
        finally:
            loss.stop()
            client.close()
            server.close()
    assert rules_for(port) == []
