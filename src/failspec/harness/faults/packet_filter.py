"""The packet-filter (iptables) rules the suite adds, and removing those of runs that died.

The one fault no userland proxy can inflict, packet loss, is an iptables rule on ``lo``
(``failspec.harness.faults.network.PacketLoss``). Each rule carries a comment naming the process
that added it (``failspec-packet-loss:<pid>``). A run that is killed cannot remove its
rule, and a rule left in place silently drops every packet to its port, for whatever
listens there later; so every run, whatever its backend, removes at its start the rules
whose process has ended (``servers.start``), as it stops the servers such runs left.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

from failspec.harness.processes import pid_alive

#: The start of every rule's comment; the owning process's pid follows.
COMMENT = "failspec-packet-loss:"


def iptables(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``iptables -w`` (waiting for the xtables lock other runs may hold)."""
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=False)


def reap_stale_rules() -> list[str]:
    """Remove the suite's rules whose process has ended (gone, or a zombie nobody reaped).

    Returns the rules removed, as ``iptables -S`` prints them. Where this process cannot
    have added a rule (not root, or no iptables) there is nothing to remove: it returns
    at once. A rule whose process still runs is another run's, and stays.
    """
    if os.name == "nt" or os.geteuid() != 0 or shutil.which("iptables") is None:
        return []
    removed = []
    for line in iptables("-S", "INPUT").stdout.splitlines():
        match = re.search(rf'--comment "?{COMMENT}(\d+)', line)
        if not match or pid_alive(int(match.group(1))):
            continue
        if iptables("-D", *shlex.split(line)[1:]).returncode == 0:
            removed.append(line)
    return removed
