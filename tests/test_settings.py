import pytest

from failspec.harness.errors import SetupError
from failspec.harness.settings import Settings


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


@pytest.mark.parametrize("port", ["0", "70000", "five"])
def test_a_port_out_of_range_or_not_a_number_is_refused(port):
    with pytest.raises(SetupError, match="pg_port"):
        Settings.from_sources({"pg_port": port}, {})


def test_timeouts_scale_with_the_multiplier():
    assert Settings.from_sources({"timeout_scale": "3"}, {}).seconds(0.5) == 1.5


def test_a_misspelt_setting_is_refused_rather_than_ignored():
    with pytest.raises(SetupError, match="unknown setting 'backnd'"):
        Settings.from_sources({"backnd": "docker"}, {})
