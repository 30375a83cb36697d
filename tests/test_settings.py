import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from failspec.harness.errors import SetupError
from failspec.harness.servers import settings as settings_module
from failspec.harness.servers.settings import Settings


def test_defaults_choose_the_backend_automatically():
    settings = Settings.from_sources({}, {})
    assert settings.backend == "auto"
    assert settings.pg_image.startswith("postgres:")


def test_userdata_wins_over_its_environment_twin():
    settings = Settings.from_sources(
        {"backend": "embedded"}, {"FAILSPEC_BACKEND": "docker", "FAILSPEC_PG_BIN": "/opt/pg/bin"}
    )
    assert settings.backend == "embedded"
    assert settings.pg_bin == "/opt/pg/bin"


def test_the_driver_is_psycopg2_unless_told_otherwise_by_userdata_or_its_twin():
    assert Settings.from_sources({}, {}).driver == "psycopg2"
    assert Settings.from_sources({}, {"FAILSPEC_DRIVER": "psycopg"}).driver == "psycopg"
    told = Settings.from_sources({"driver": "psycopg2"}, {"FAILSPEC_DRIVER": "psycopg"})
    assert told.driver == "psycopg2"


def test_an_unknown_driver_is_one_clear_line_naming_the_choices():
    with pytest.raises(SetupError) as caught:
        Settings.from_sources({"driver": "asyncpg"}, {})
    message = str(caught.value)
    assert "asyncpg" in message and "psycopg2, psycopg" in message and "FAILSPEC_DRIVER" in message


def test_a_database_urls_parameters_are_judged_by_the_chosen_drivers_libpq():
    url = "postgresql://u@h/d?sslmode=require"
    for driver in ("psycopg2", "psycopg"):
        assert Settings.from_sources({"backend": "url", "db_url": url, "driver": driver}, {})
    with pytest.raises(SetupError, match="not a libpq connection parameter"):
        Settings.from_sources(
            {"backend": "url", "db_url": "postgresql://u@h/d?colour=red", "driver": "psycopg"}, {}
        )


def test_the_data_layer_is_the_ledgers_own_unless_told_otherwise_by_userdata_or_its_twin():
    assert Settings.from_sources({}, {}).data_layer == "failspec.ledger.port:reference"
    example = "examples.psycopg_ledger:factory"
    assert Settings.from_sources({}, {"FAILSPEC_DATA_LAYER": example}).data_layer == example
    told = Settings.from_sources({"data_layer": example}, {"FAILSPEC_DATA_LAYER": "x.y:z"})
    assert told.data_layer == example


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("examples.psycopg_ledger", "is not of the form package.module:factory"),
        ("no_such_package.layer:factory", "cannot import no_such_package.layer"),
        ("examples.psycopg_ledger:no_such_factory", "has no no_such_factory"),
        ("examples.psycopg_ledger.ledger:REFERENCE_CONSTRAINT", "is not callable"),
    ],
)
def test_a_data_layer_that_is_not_an_importable_factory_is_one_clear_line(spec, message):
    with pytest.raises(SetupError, match=message) as refused:
        Settings.from_sources({"data_layer": spec}, {})
    assert "\n" not in str(refused.value)
    assert "FAILSPEC_DATA_LAYER" in str(refused.value)


def test_database_url_comes_from_the_environment():
    settings = Settings.from_sources({"backend": "url"}, {"DATABASE_URL": "postgresql://u@h/d"})
    assert settings.db_url == "postgresql://u@h/d"


def test_an_unknown_backend_is_one_clear_line_naming_the_choices():
    with pytest.raises(SetupError) as caught:
        Settings.from_sources({"backend": "oracle"}, {})
    message = str(caught.value)
    assert "oracle" in message and "embedded" in message and "\n" not in message


def test_the_url_backend_without_a_url_says_how_to_give_one():
    with pytest.raises(SetupError, match="DATABASE_URL"):
        Settings.from_sources({"backend": "url"}, {})


def test_a_standby_url_comes_from_its_environment_twin_for_the_url_backend():
    settings = Settings.from_sources(
        {"backend": "url"},
        {"DATABASE_URL": "postgresql://u@h/d", "FAILSPEC_STANDBY_URL": "postgresql://u@s/d"},
    )
    assert settings.standby_url == "postgresql://u@s/d"


def test_a_standby_url_for_a_backend_that_starts_its_own_standby_is_refused():
    with pytest.raises(SetupError, match="start their own standby"):
        Settings.from_sources({"backend": "embedded", "standby_url": "postgresql://u@s/d"}, {})


def test_a_bad_standby_url_is_named_as_such_and_never_repeated():
    with pytest.raises(SetupError) as caught:
        Settings.from_sources(
            {"backend": "url", "db_url": "postgresql://u@h/d",
             "standby_url": "postgresql://u:p@ss@s/d"},
            {},
        )  # fmt: skip
    message = str(caught.value)
    assert message.startswith("standby_url has an '@'") and "p@ss" not in message


@pytest.mark.parametrize("port", ["0", "70000", "five"])
def test_a_port_out_of_range_or_not_a_number_is_refused(port):
    with pytest.raises(SetupError, match="pg_port"):
        Settings.from_sources({"pg_port": port}, {})


def test_timeouts_scale_with_the_multiplier():
    assert Settings.from_sources({"timeout_scale": "3"}, {}).seconds(0.5) == 1.5


def test_a_misspelt_setting_is_refused_rather_than_ignored():
    with pytest.raises(SetupError, match="unknown setting 'backnd'"):
        Settings.from_sources({"backnd": "docker"}, {})


@pytest.mark.parametrize("scale", ["0.1", "0.99", "10.5", "100"])
def test_a_timeout_scale_outside_1_to_10_is_refused_with_its_range(scale):
    with pytest.raises(SetupError, match=r"timeout_scale=.* is out of range \(1.0 to 10.0\)"):
        Settings.from_sources({"timeout_scale": scale}, {})


@pytest.mark.parametrize("scale", ["1", "2.5", "10"])
def test_a_timeout_scale_from_1_to_10_is_taken(scale):
    assert Settings.from_sources({"timeout_scale": scale}, {}).timeout_scale == float(scale)


def test_the_generated_workloads_seed_and_length_come_from_userdata_or_the_environment():
    default = Settings.from_sources({}, {})
    assert (default.seed, default.workload_transactions) == (None, 2000)
    environ = {"FAILSPEC_SEED": "42", "FAILSPEC_WORKLOAD_TRANSACTIONS": "1000"}
    assert Settings.from_sources({}, environ).seed == 42
    assert Settings.from_sources({}, environ).workload_transactions == 1000
    taken = Settings.from_sources({"seed": "7", "workload_transactions": "50"}, environ)
    assert (taken.seed, taken.workload_transactions) == (7, 50)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("seed", "-1", r"seed='-1' is out of range"),
        ("seed", "abc", r"seed='abc' is not a number"),
        ("workload_transactions", "5", r"workload_transactions='5' is out of range \(10 to"),
        ("workload_transactions", "many", "workload_transactions='many' is not a number"),
    ],
)
def test_a_seed_or_run_length_out_of_range_is_refused(name, value, message):
    with pytest.raises(SetupError, match=message):
        Settings.from_sources({name: value}, {})


def test_a_password_with_an_unencoded_at_sign_is_refused_naming_the_fix_and_never_shown():
    with pytest.raises(SetupError) as caught:
        Settings.from_sources(
            {"backend": "url"}, {"DATABASE_URL": "postgresql://me:p@ss-9Q@127.0.0.1:5432/db"}
        )
    message = str(caught.value)
    assert "%40" in message and "\n" not in message
    for part in ("p@ss", "ss-9Q", "127.0.0.1", "me:"):
        assert part not in message


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sslmod=require", "'sslmod', which is not a libpq connection parameter"),
        ("application_name=mine", "may not set application_name"),
        ("connect_timeout=30", "may not set connect_timeout: .* timeout_scale"),
        ("host=/var/run/postgresql", "may not set host"),
        ("password=hunter2-in-query", "may not set password: .*pgpass"),
        ("sslmode=require&sslmode=disable", "sets sslmode 2 times"),
    ],
)
def test_a_url_parameter_the_suite_cannot_pass_on_is_refused_in_one_line(query, expected):
    url = f"postgresql://me:s3cret-pw@db.example:5432/ledger?{query}"
    with pytest.raises(SetupError, match=expected) as caught:
        Settings.from_sources({"backend": "url", "db_url": url}, {})
    message = str(caught.value)
    assert "\n" not in message and "s3cret-pw" not in message and "hunter2" not in message


def test_libpq_parameters_in_the_url_are_taken():
    url = (
        "postgresql://me@db.example/ledger?sslmode=verify-full&sslrootcert=/etc/ca.crt"
        "&options=-c%20work_mem%3D8MB&target_session_attrs=read-write&keepalives_idle=30"
    )
    assert Settings.from_sources({"backend": "url", "db_url": url}, {}).db_url == url


def test_a_database_url_is_checked_only_for_the_url_backend():
    broken = {"DATABASE_URL": "postgresql://me:p@ss@host/db"}
    assert Settings.from_sources({"backend": "embedded"}, broken).backend == "embedded"


def test_the_settings_check_reads_behaves_options_and_says_one_line(capsys):
    assert settings_module.main(["-D", "backend=embedded", "--tags", "not @slow", "features"]) == 0
    assert settings_module.main(["-Dbacknd=url", "features"]) == 2
    assert capsys.readouterr().err == (
        "failspec: cannot run: unknown setting 'backnd': known are backend, data_layer, db_url, "
        "driver, missing_capabilities, pg_bin, pg_image, pg_port, seed, standby_url, "
        "timeout_scale, workload_transactions\n"
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-D", "backnd=url"], "failspec: cannot run: unknown setting 'backnd'"),
        # --jobs and --shard are run-spec's own options: the settings check does not take
        # them for behave's, and still finds the misspelt setting after them.
        (["--jobs", "auto", "--shard=1/2", "-D", "backnd=url"],
         "failspec: cannot run: unknown setting 'backnd'"),
        (["--jobs", "0"], "failspec: cannot run: --jobs (or FAILSPEC_JOBS) must be"),
        (["--shard", "3/2"], "failspec: cannot run: --shard must be K/N with 1 <= K <= N"),
    ],
    ids=["setting", "setting-after-jobs", "jobs", "shard"],
)  # fmt: skip
def test_run_tests_reports_a_misspelt_setting_before_its_gates(args, said):
    root = Path(__file__).resolve().parent.parent
    stamp = hashlib.sha256(  # as scripts/bootstrap computes it
        b"".join((root / f).read_bytes() for f in ("requirements.txt", "requirements-dev.txt",
                                                   "requirements-dev.lock", "pyproject.toml"))
    ).hexdigest()  # fmt: skip
    venv_stamp = root / ".venv" / ".failspec-stamp"
    if not venv_stamp.exists() or venv_stamp.read_text().strip() != stamp:
        pytest.skip("the .venv is older than the requirements: run-tests would rebuild it first")
    started = time.monotonic()
    # Its own session, so that if the check were gone the gates it would start are
    # stopped with it (the pytest gate would run this test again).
    run = subprocess.Popen(
        [str(root / "run-tests"), *args], cwd=root, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 2, out + err
    assert said in err
    assert "== ruff" not in out
    assert time.monotonic() - started < 10
