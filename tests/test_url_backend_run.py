"""A whole run of the specification on the url backend over SSL with a client
certificate (the server of test_url_backend.py): every connection keeps the URL's
parameters, and no password appears anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from tests.test_url_backend import PASSWORD
from tests.test_url_backend import ssl_server as ssl_server  # the fixture, shared

ROOT = Path(__file__).resolve().parent.parent


def test_a_whole_run_over_ssl_with_a_client_certificate_shows_no_password(
    ssl_server,
    tmp_path,
):
    """The specification, run on the url backend over SSL with a client certificate,
    passes (every connection it opens keeps the URL's parameters, or the server refuses
    it); neither the password nor any part of it appears on the console or in any report.
    """
    url = ssl_server.url(**ssl_server.tls(options="-c failspec.probe=on"))
    reports = tmp_path / "reports"
    env = {**os.environ, "DATABASE_URL": url}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "behave", "-D", "backend=url",
         "-f", "json", "-o", str(reports / "behave.json"), "-f", "progress",
         "--junit-directory", str(reports / "junit")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert time.monotonic() - started < 300
    report = subprocess.run(
        [sys.executable, "-m", "failspec.report", str(reports)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    output += report.stdout + report.stderr
    files = [p for p in reports.rglob("*") if p.is_file()]
    assert {"report.html", "metrics.json", "behave.json"} <= {p.name for p in files}
    _assert_no_password(output, {str(p): p.read_text(errors="replace") for p in files})


def _assert_no_password(output: str, files: dict[str, str]) -> None:
    """Neither the password, nor its URL-encoded form, nor either side of its '@'."""
    secrets = {PASSWORD, quote(PASSWORD, safe=""), "p@ss", "w/rd?#%-x9Q", "ss:w"}
    for where, text in {"the console": output, **files}.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {where}"
