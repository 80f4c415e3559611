"""The typed environment readers behind settings.py: bad values stop the process with the name of
the variable, secrets may come from NAME_FILE, DATABASE_URL becomes a DATABASES entry."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from fullstackagent.config import (
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)


@pytest.fixture
def environ(monkeypatch):
    """Sets variables for one test; names are unique to these tests so nothing else reads them."""
    for name in ("FSA_TEST_VALUE", "FSA_TEST_VALUE_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), ("Yes", True), (" ON ", True),
                                           ("0", False), ("false", False), ("NO", False), ("off", False)])
def test_bool_reads_the_usual_spellings(environ, raw, expected):
    environ.setenv("FSA_TEST_VALUE", raw)

    assert env_bool("FSA_TEST_VALUE", not expected) is expected


def test_bool_unset_or_empty_is_the_default(environ):
    assert env_bool("FSA_TEST_VALUE", True) is True
    environ.setenv("FSA_TEST_VALUE", "")
    assert env_bool("FSA_TEST_VALUE", False) is False


def test_bad_bool_names_the_variable(environ):
    environ.setenv("FSA_TEST_VALUE", "ture")

    with pytest.raises(ImproperlyConfigured) as error:
        env_bool("FSA_TEST_VALUE", False)

    assert str(error.value) == (
        "FSA_TEST_VALUE='ture' is not a boolean; use one of "
        "['0', '1', 'false', 'no', 'off', 'on', 'true', 'yes']"
    )


def test_int_parses_and_checks_bounds(environ):
    environ.setenv("FSA_TEST_VALUE", "30")
    assert env_int("FSA_TEST_VALUE", 5, minimum=5, maximum=60) == 30

    environ.setenv("FSA_TEST_VALUE", "4")
    with pytest.raises(ImproperlyConfigured) as low:
        env_int("FSA_TEST_VALUE", 5, minimum=5)
    environ.setenv("FSA_TEST_VALUE", "61")
    with pytest.raises(ImproperlyConfigured) as high:
        env_int("FSA_TEST_VALUE", 5, maximum=60)

    assert str(low.value) == "FSA_TEST_VALUE=4 is below the minimum 5"
    assert str(high.value) == "FSA_TEST_VALUE=61 is above the maximum 60"


def test_bad_int_names_the_variable(environ):
    environ.setenv("FSA_TEST_VALUE", "30s")

    with pytest.raises(ImproperlyConfigured) as error:
        env_int("FSA_TEST_VALUE", 30)

    assert str(error.value) == "FSA_TEST_VALUE='30s' is not an integer"


def test_float_parses_and_rejects_junk(environ):
    environ.setenv("FSA_TEST_VALUE", "0.5")
    assert env_float("FSA_TEST_VALUE", 3.0, minimum=0.1) == 0.5

    environ.setenv("FSA_TEST_VALUE", "three")
    with pytest.raises(ImproperlyConfigured) as junk:
        env_float("FSA_TEST_VALUE", 3.0)
    environ.setenv("FSA_TEST_VALUE", "0.01")
    with pytest.raises(ImproperlyConfigured) as low:
        env_float("FSA_TEST_VALUE", 3.0, minimum=0.1)

    assert str(junk.value) == "FSA_TEST_VALUE='three' is not a number"
    assert str(low.value) == "FSA_TEST_VALUE=0.01 is below the minimum 0.1"


def test_bad_choice_names_the_variable_and_the_choices(environ):
    environ.setenv("FSA_TEST_VALUE", "docker")

    with pytest.raises(ImproperlyConfigured) as error:
        env_choice("FSA_TEST_VALUE", "local", ("local", "kubernetes"))

    assert str(error.value) == "FSA_TEST_VALUE='docker' must be one of local, kubernetes"


def test_choice_accepts_a_listed_value_and_defaults_when_unset(environ):
    assert env_choice("FSA_TEST_VALUE", "local", ("local", "kubernetes")) == "local"
    environ.setenv("FSA_TEST_VALUE", "kubernetes")
    assert env_choice("FSA_TEST_VALUE", "local", ("local", "kubernetes")) == "kubernetes"


def test_list_splits_on_commas_and_drops_blanks(environ):
    assert env_list("FSA_TEST_VALUE", ["localhost"]) == ["localhost"]
    environ.setenv("FSA_TEST_VALUE", " a.example.com, ,b.example.com ,")
    assert env_list("FSA_TEST_VALUE", ["localhost"]) == ["a.example.com", "b.example.com"]
    # Set but empty means "none", not "the default".
    environ.setenv("FSA_TEST_VALUE", "")
    assert env_list("FSA_TEST_VALUE", ["localhost"]) == []


def test_name_file_is_read_and_stripped(environ, tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text("s3cret-from-a-docker-secret\n")
    environ.setenv("FSA_TEST_VALUE_FILE", str(secret_file))

    assert env_str("FSA_TEST_VALUE") == "s3cret-from-a-docker-secret"


def test_the_variable_wins_over_its_file(environ, tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text("from-the-file")
    environ.setenv("FSA_TEST_VALUE_FILE", str(secret_file))
    environ.setenv("FSA_TEST_VALUE", "from-the-variable")

    assert env_str("FSA_TEST_VALUE") == "from-the-variable"


def test_typed_readers_read_the_file_too(environ, tmp_path):
    value_file = tmp_path / "lease"
    value_file.write_text("45\n")
    environ.setenv("FSA_TEST_VALUE_FILE", str(value_file))

    assert env_int("FSA_TEST_VALUE", 30) == 45


def test_unreadable_name_file_names_the_variable(environ, tmp_path):
    missing = tmp_path / "not-there"
    environ.setenv("FSA_TEST_VALUE_FILE", str(missing))

    with pytest.raises(ImproperlyConfigured) as error:
        env_str("FSA_TEST_VALUE")

    assert str(error.value).startswith(f"FSA_TEST_VALUE_FILE='{missing}' cannot be read: ")


def test_database_url_parses_every_part():
    entry = database_from_url(
        "postgresql://fsa%40app:p%40ss%2Fword@db.internal:6543/full%20stack?sslmode=require&connect_timeout=5"
    )

    assert {key: entry[key] for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")} == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "full stack",
        "USER": "fsa@app",
        "PASSWORD": "p@ss/word",
        "HOST": "db.internal",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require", "connect_timeout": "5"},
    }


def test_database_url_accepts_the_postgres_scheme_without_port():
    entry = database_from_url("postgres://fsa@db/fsa")

    assert (entry["NAME"], entry["USER"], entry["PASSWORD"], entry["HOST"], entry["PORT"], entry["OPTIONS"]) == (
        "fsa", "fsa", "", "db", "", {}
    )


@pytest.mark.parametrize("url, scheme", [("mysql://u:p@db/fsa", "mysql"), ("sqlite:///fsa.db", "sqlite"),
                                         ("//u:p@db.internal:5432/fsa", "")])
def test_database_url_rejects_other_schemes(url, scheme):
    with pytest.raises(ImproperlyConfigured) as error:
        database_from_url(url)

    assert str(error.value) == f"DATABASE_URL must be a postgresql:// URL, got scheme {scheme!r}"


def test_database_url_without_a_database_is_refused():
    with pytest.raises(ImproperlyConfigured) as error:
        database_from_url("postgresql://u:p@db:5432/", name="LOCAL_DATABASE_ADMIN_URL")

    assert str(error.value) == "LOCAL_DATABASE_ADMIN_URL names no database"


def test_database_url_with_a_bad_port_is_refused():
    with pytest.raises(ImproperlyConfigured) as error:
        database_from_url("postgresql://u:p@db:54x32/fsa")

    assert str(error.value) == "DATABASE_URL has an invalid port"
