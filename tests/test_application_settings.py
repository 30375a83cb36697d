"""The application's settings are gathered before its first use and frozen from then on:
a change afterwards would be silently ignored by the engine, so it fails, naming the
setting (failspec.harness.scenario.application)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from failspec.harness.scenario.application import Application, SettingsFrozen
from failspec.harness.scenario.workspace import Run, Workspace

pytestmark = pytest.mark.server


@pytest.fixture
def workspace(run: Run) -> Iterator[Workspace]:
    ws = run.workspace("settings test")
    yield ws
    ws.close()


@pytest.fixture
def app(workspace: Workspace) -> Iterator[Application]:
    application = Application(workspace)
    yield application
    application.close()


def test_settings_gathered_before_first_use_reach_the_engine(app: Application) -> None:
    app.connect_timeout = 3
    app.connect_args["tcp_user_timeout"] = 1500
    app.connect_args.update(keepalives=1)
    app.server_settings["statement_timeout"] = "700ms"
    app.use_pool(pool_size=2, pool_timeout=4.0)
    pool = app.engine.pool
    assert (pool.size(), pool.timeout()) == (2, 4.0)  # type: ignore[attr-defined]  (QueuePool)
    with app.engine.connect() as conn:
        shown = conn.exec_driver_sql("SHOW statement_timeout").scalar_one()
        dsn = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
    assert shown == "700ms"
    assert (dsn["connect_timeout"], dsn["tcp_user_timeout"], dsn["keepalives"]) == (
        "3", "1500", "1",
    )  # fmt: skip


CHANGES: dict[str, Callable[[Application], object]] = {
    "address (url)": lambda app: setattr(app, "url", app.workspace.url()),
    "connect timeout": lambda app: setattr(app, "connect_timeout", 9),
    "connection arguments (tcp_user_timeout)": lambda app: app.connect_args.__setitem__(
        "tcp_user_timeout", 1
    ),
    "connection arguments (keepalives)": lambda app: app.connect_args.update(keepalives=1),
    "connection arguments": lambda app: app.connect_args.clear(),
    "server settings (lock_timeout)": lambda app: app.server_settings.update(
        {"lock_timeout": "1s"}
    ),
    "pool options (pool_size)": lambda app: app.pool_options.pop("pool_size"),
    "pool (pool_pre_ping)": lambda app: app.use_pool(pool_pre_ping=True),
    "request deadline": lambda app: setattr(app, "request_deadline", 1.0),
}


@pytest.mark.parametrize("setting", CHANGES)
def test_a_setting_changed_after_first_use_fails_naming_it(app: Application, setting) -> None:
    before = (dict(app.connect_args), dict(app.server_settings), dict(app.pool_options))
    app.engine  # noqa: B018  (the first use builds the engine)
    with pytest.raises(SettingsFrozen) as refused:
        CHANGES[setting](app)
    assert str(refused.value).startswith(
        f"the application's {setting} is chosen before its first use"
    )
    assert (dict(app.connect_args), dict(app.server_settings), dict(app.pool_options)) == before


def test_what_is_not_a_setting_stays_free_after_first_use(app: Application) -> None:
    app.engine  # noqa: B018
    app.during_next_wait = lambda: None
    app.last_backend_pid = 1
    app.at_next_commit.append(lambda conn: None)


def test_the_settings_in_use_are_those_the_engine_is_built_with_and_read_only(
    app: Application,
) -> None:
    app.connect_timeout = 3
    app.connect_args["tcp_user_timeout"] = 1500
    app.server_settings["statement_timeout"] = "700ms"
    app.use_pool(pool_size=2, pool_timeout=4.0)
    app.request_deadline = 2.5
    used = app.settings_in_use
    assert (used.connect_timeout, used.pool_timeout, used.request_deadline) == (3, 4.0, 2.5)
    assert dict(used.connect_args) == {"tcp_user_timeout": 1500}
    assert dict(used.server_settings) == {"statement_timeout": "700ms"}
    with pytest.raises(TypeError):
        used.connect_args["tcp_user_timeout"] = 1  # type: ignore[index]
