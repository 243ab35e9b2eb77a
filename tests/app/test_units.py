"""Pure tests of the app's small pieces (no services): passwords, settings, URL forms."""
from __future__ import annotations

import sys

import pytest

from tests.support.sample_app import APP_DIR

sys.path.insert(0, str(APP_DIR))  # the app is deployed as a directory, not installed as a package

from app.passwords import hash_password, verify_password  # noqa: E402
from app.settings import ConfigError, Settings, libpq_url, sqlalchemy_url  # noqa: E402

BASE = {"DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/d", "REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
        "SECRET_KEY": "k"}


def test_password_round_trip_and_salted():
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second  # fresh salt each time
    assert verify_password("s3cret", first) and verify_password("s3cret", second)


@pytest.mark.parametrize("password, stored", [
    ("wrong", hash_password("right")),
    ("right", "plaintext-right"),
    ("right", "pbkdf2$1$2$3$00$00"),
    ("right", "scrypt$x$8$1$00$00"),
    ("right", ""),
])
def test_verify_password_refuses(password, stored):
    assert verify_password(password, stored) is False


@pytest.mark.parametrize("given, libpq, sqlalchemy", [
    ("postgresql://u:p@h:1/d", "postgresql://u:p@h:1/d", "postgresql+psycopg://u:p@h:1/d"),
    ("postgresql+psycopg://u:p@h:1/d", "postgresql://u:p@h:1/d", "postgresql+psycopg://u:p@h:1/d"),
    ("postgres://u:p@h:1/d", "postgres://u:p@h:1/d", "postgresql+psycopg://u:p@h:1/d"),
])
def test_database_url_forms(given, libpq, sqlalchemy):
    assert (libpq_url(given), sqlalchemy_url(given)) == (libpq, sqlalchemy)


def test_settings_defaults():
    settings = Settings.from_env(BASE)
    assert (settings.release, settings.git_sha, settings.fault_error_rate, settings.fault_readiness,
            settings.allow_slow) == ("dev", "unknown", 0.0, False, False)


@pytest.mark.parametrize("env, message", [
    ({"DATABASE_URL": ""}, "DATABASE_URL is required"),
    ({"REDIS_URL": " "}, "REDIS_URL is required"),
    ({"SECRET_KEY": ""}, "SECRET_KEY is required"),
    ({"APP_FAULT_ERROR_RATE": "1.5"}, "APP_FAULT_ERROR_RATE='1.5'"),
    ({"APP_FAULT_ERROR_RATE": "half"}, "APP_FAULT_ERROR_RATE='half'"),
])
def test_settings_errors_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **env})


@pytest.mark.parametrize("env, field, value", [
    ({"APP_FAULT_ERROR_RATE": "0.25"}, "fault_error_rate", 0.25),
    ({"APP_FAULT_READINESS": "1"}, "fault_readiness", True),
    ({"APP_FAULT_READINESS": "0"}, "fault_readiness", False),
    ({"APP_ALLOW_SLOW": "1"}, "allow_slow", True),
    ({"DATABASE_URL": "postgresql+psycopg://u@h/d"}, "database_url", "postgresql://u@h/d"),
])
def test_settings_parse(env, field, value):
    assert getattr(Settings.from_env({**BASE, **env}), field) == value
