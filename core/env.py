"""Strict readers for settings that come from the environment.

Every helper refuses a bad value with ImproperlyConfigured naming the variable, so a typo in a
deployment fails at start-up instead of silently falling back to a default.
"""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, NotRequired, TypedDict

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    # <NAME>_FILE lets secrets come from a mounted file (Docker/Kubernetes secrets).
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read the file ({exc.strerror})") from exc
    return os.environ.get(name)


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    value = _raw(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"{name} is required but not set")
        return default or ""
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if number != number or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name}={number} is outside [{minimum}, {maximum}]")
    return number


def env_list(name: str, default: Sequence[str] = ()) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: Sequence[str]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def env_rate(name: str, default: str) -> str | None:
    """A DRF throttle rate such as '100/min'; 'none' disables the throttle."""
    value = env_str(name, default).strip()
    if value.lower() == "none":
        return None
    count, _, period = value.partition("/")
    if not count.isdigit() or not period or period[0] not in "smhd":
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 100/s, 600/min, 10000/hour or 'none'")
    return value


class DatabaseConfig(TypedDict):
    """One entry of Django's DATABASES: what django-environ parses from a URL, and what settings add."""

    ENGINE: str
    NAME: str
    USER: NotRequired[str]
    PASSWORD: NotRequired[str]
    HOST: NotRequired[str]
    PORT: NotRequired[int | str]
    OPTIONS: NotRequired[dict[str, object]]
    CONN_MAX_AGE: NotRequired[int]
    CONN_HEALTH_CHECKS: NotRequired[bool]
    TEST: NotRequired[dict[str, str]]


def env_database(name: str, default_sqlite_path: Path) -> DatabaseConfig:
    value = env_str(name)
    if not value:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite_path)}
    try:
        config: DatabaseConfig = environ.Env.db_url_config(value)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
    if config.get("ENGINE") not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
        raise ImproperlyConfigured(f"{name}: only postgres:// and sqlite:// URLs are supported")
    return config


def env_redis_url(name: str, fallback: str) -> str:
    """`name`, or the Sentinel service named by REDIS_SENTINELS + REDIS_SERVICE (+ REDIS_PASSWORD, REDIS_DB)."""
    from core.redis_clients import parse_sentinel, sentinel_url

    sentinels = env_str("REDIS_SENTINELS")
    if sentinels:
        value = sentinel_url(sentinels, env_str("REDIS_SERVICE", required=True), password=env_str("REDIS_PASSWORD"),
                             db=env_int("REDIS_DB", 0, minimum=0))
        name = "REDIS_SENTINELS / REDIS_SERVICE"
    else:
        value = env_str(name, fallback)
    if not value.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        raise ImproperlyConfigured(f"{name} must start with redis://, rediss://, unix:// or redis+sentinel://")
    if value.startswith("redis+sentinel://"):
        try:
            parse_sentinel(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {exc}") from None
    return value


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket's root


# S3's rules for new bucket names: 3-63 lowercase letters, digits, dots and hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def s3_location(value: str, *, name: str = "MODEL_STORE_URL") -> S3Location | None:
    """`s3://bucket/prefix` as a location; None for anything that is not an s3:// URL (a local folder)."""
    if not value.startswith("s3://"):
        if "://" in value and not value.startswith("file://"):
            raise ImproperlyConfigured(f"{name}={value!r}: use a local folder or s3://bucket/prefix")
        return None
    bucket, _, prefix = value.removeprefix("s3://").partition("/")
    if not _BUCKET.match(bucket):
        raise ImproperlyConfigured(f"{name}={value!r}: {bucket!r} is not a valid S3 bucket name")
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise ImproperlyConfigured(f"{name}={value!r}: the prefix has an empty, '.' or '..' part")
    return S3Location(bucket=bucket, prefix=prefix)


class ModelStoreSettings(NamedTuple):
    url: str
    folder: Path
    s3: dict[str, str | None]
    cache: Path


def env_model_store(var_dir: Path) -> ModelStoreSettings:
    """MODEL_STORE_URL: a local folder (by default MODEL_STORE_DIR, itself $VAR_DIR/models) or s3://bucket/prefix,
    reached with the standard AWS_* variables (boto3 reads the same ones); ARTIFACT_CACHE_DIR: the verified local
    copies of an S3 store's artifacts that validation and model servers load."""
    url = env_str("MODEL_STORE_URL")
    folder = Path(env_str("MODEL_STORE_DIR", str(var_dir / "models")))
    if url and s3_location(url) is None:  # s3_location also refuses a malformed URL, at start-up
        folder = Path(url.removeprefix("file://"))
    s3 = {"endpoint_url": env_str("AWS_ENDPOINT_URL") or None, "region_name": env_str("AWS_DEFAULT_REGION") or None,
          # Unset: boto3's own chain (instance role, ~/.aws) provides them.
          "access_key": env_str("AWS_ACCESS_KEY_ID") or None, "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None}
    cache = Path(env_str("ARTIFACT_CACHE_DIR", str(var_dir / "cache" / "artifacts")))
    return ModelStoreSettings(url="" if s3_location(url) is None else url, folder=folder, s3=s3, cache=cache)
