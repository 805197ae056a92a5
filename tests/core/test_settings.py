"""Settings come from the environment through helpers that refuse bad values loudly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core import env

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "k" * 20 + "-production-secret-with-enough-entropy-0123456789-abcdefghij",
    "ALLOWED_HOSTS": "api.example.com",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_PROXY_SSL_HEADER": "1",
    "REDIS_URL": "redis://:redis-secret@redis.internal:6379/0",  # core.W001 without a password
}


@pytest.fixture
def environ(monkeypatch):
    return monkeypatch


def test_booleans_are_strict(environ):
    environ.setenv("FLAG", "yes")
    assert env.env_bool("FLAG", False) is True
    environ.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe' is not a boolean"):
        env.env_bool("FLAG", False)


def test_integers_are_checked_and_bounded(environ):
    environ.setenv("N", "12x")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env.env_int("N", 1)
    environ.setenv("N", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum 1"):
        env.env_int("N", 1, minimum=1)


def test_rates_are_validated(environ):
    environ.setenv("RATE", "100/min")
    assert env.env_rate("RATE", "1/s") == "100/min"
    environ.setenv("RATE", "lots")
    with pytest.raises(ImproperlyConfigured, match="RATE='lots'"):
        env.env_rate("RATE", "1/s")
    environ.setenv("RATE", "none")
    assert env.env_rate("RATE", "1/s") is None


def test_database_urls_are_parsed_and_unknown_engines_refused(environ, tmp_path):
    environ.setenv("DB", "postgres://u:p@db.local:5433/app")
    config = env.env_database("DB", tmp_path / "x.sqlite3")
    assert (config["ENGINE"], config["HOST"], config["PORT"], config["NAME"]) == (
        "django.db.backends.postgresql", "db.local", 5433, "app")
    environ.setenv("DB", "mysql://u@h/app")
    with pytest.raises(ImproperlyConfigured, match="only postgres"):
        env.env_database("DB", tmp_path / "x.sqlite3")
    environ.delenv("DB")
    assert env.env_database("DB", tmp_path / "x.sqlite3")["ENGINE"] == "django.db.backends.sqlite3"


def test_redis_url_must_be_a_redis_url(environ):
    environ.setenv("R", "http://localhost:6379")
    with pytest.raises(ImproperlyConfigured, match="must start with redis://"):
        env.env_redis_url("R", "redis://x")


def test_secrets_can_come_from_a_file(environ, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    environ.setenv("TOKEN_FILE", str(secret))
    assert env.env_str("TOKEN") == "from-a-file"


def _manage(*args: str, extra_env: dict) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DATABASE_URL", "REDIS_URL")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**keep, "VAR_DIR": str(ROOT / "var" / "check-env"), **extra_env}, timeout=120)


def test_check_deploy_is_clean_with_production_values():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", extra_env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_insecure_values():
    insecure = {**PRODUCTION_ENV, "SECURE_SSL_REDIRECT": "0", "SECURE_HSTS_SECONDS": "0"}
    result = _manage("check", "--deploy", "--fail-level", "WARNING", extra_env=insecure)
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout


def test_the_platform_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = _manage("check", extra_env={"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_a_bad_value_stops_start_up_with_the_variable_named():
    result = _manage("check", extra_env={**PRODUCTION_ENV, "REQUIRE_API_KEY": "sometimes"})
    assert result.returncode != 0
    assert "REQUIRE_API_KEY='sometimes' is not a boolean" in result.stderr


def test_env_example_lists_every_variable_the_settings_read():
    import re

    sources = "".join((ROOT / path).read_text() for path in ("servingplatform/settings.py", "scripts/serve.py",
                                                              "core/env.py"))  # core/env.py: the model store's
    read = set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', sources))
    read |= set(re.findall(r'os\.environ\.get\("([A-Z][A-Z0-9_]+)"', sources))
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / "docker" / ".env.example").read_text(), re.MULTILINE))
    assert read, "no settings found: the pattern is stale"
    assert read - listed == set()
