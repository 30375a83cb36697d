"""The unprivileged system user a root harness runs PostgreSQL as (PostgreSQL refuses to
run as root), and the arguments that run a program as another user."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TypedDict

from failspec.harness.errors import SetupError

if os.name != "nt":
    import pwd

SERVER_USER = "failspec-pg"  # the unprivileged system user a root harness runs the server as


def server_user() -> pwd.struct_passwd | None:
    """The system user the server runs as: None when the harness is not root."""
    if os.name == "nt" or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise SetupError(
            f"PostgreSQL refuses to run as root and there is no user {SERVER_USER!r}: "
            f"create it (useradd --system {SERVER_USER}) or run the suite as a normal user"
        )
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", SERVER_USER],
        check=True, capture_output=True,
    )  # fmt: skip
    return pwd.getpwnam(SERVER_USER)


class RunAs(TypedDict, total=False):
    """The arguments of :class:`subprocess.Popen` that run a program as another user (with
    that user's group and no supplementary groups); empty to run it as the harness."""

    user: int
    group: int
    extra_groups: list[int]


def run_as(uid: int, gid: int) -> RunAs:
    """Popen's arguments to run a program as user ``uid`` in group ``gid`` (only root may)."""
    return {"user": uid, "group": gid, "extra_groups": []}
