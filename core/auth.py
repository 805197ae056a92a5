import hashlib
import re
from typing import cast

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from core.invalidation import GenerationCache
from core.lockout import SignIn
from core.models import ApiKey
from core.throttling import client_address

# Verified keys are remembered per process, keyed by a hash of the secret, so the prediction hot path
# costs no DB query. Any change to a key row (revoked, scope, expiry, deleted) is announced and drops
# them in every process at once; API_KEY_CACHE_S bounds how long one lives if an announcement is lost
# or Redis is down (they are still kept then: a Redis outage must not put every request on the DB).
_verified = GenerationCache("api_keys", lambda: settings.API_KEY_CACHE_S, while_deaf=True)


# An API key is `<8-character prefix>.<secret>`, one dot; a JWT has three dot-separated parts.
_API_KEY_SHAPE = re.compile(rb"^[A-Za-z0-9]{8}\.[A-Za-z0-9]+$")
_KEY_PREFIX = re.compile(r"[A-Za-z0-9]{8}")
API_KEY_AS_BEARER = ("API keys go in the X-API-Key header (X-API-Key: <key>); Authorization: Bearer takes "
                     "the JWT access tokens of POST /api/v1/auth/token/.")


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def cached_key(raw: str) -> ApiKey | None:
    key: ApiKey | None = _verified.get(_digest(raw))
    return key


def key_generation() -> int:
    """Read before a verifying query; pass to remember_key."""
    return _verified.generation()


def remember_key(raw: str, key: ApiKey, generation: int) -> None:
    """Keeps a key verified under `generation` (read before the verifying query)."""
    _verified.put(_digest(raw), key, generation)


def forget_cached_keys() -> None:
    _verified.clear()


# Hashed once here, so the first unknown prefix costs no more than the next one.
_DUMMY_HASH = ApiKey.objects.key_generator.hash("00000000.not-a-key")


def verify_api_key(raw: str) -> ApiKey | None:
    """The usable key `raw` names, or None. The library's get_from_key returns as soon as the prefix is
    unknown and hashes only for a known one, so the time of a refusal told which prefixes exist; here both
    refusals run one query and one hash comparison (against a dummy hash when no row matched)."""
    prefix = raw.partition(".")[0]
    # The library's manager types its rows as AbstractAPIKey; on ApiKey they are ours.
    rows = cast(list[ApiKey], list(ApiKey.objects.get_usable_keys().filter(prefix=prefix)[:1]))
    key = rows[0] if rows else None
    valid = ApiKey.objects.key_generator.verify(raw, key.hashed_key if key is not None else _DUMMY_HASH)
    return key if valid and key is not None else None


def key_credential(raw: str) -> str | None:
    """What a key attempt counts against besides its address: its prefix (public, shown in key lists)."""
    prefix = raw.split(".", 1)[0]
    return f"key:{prefix}" if _KEY_PREFIX.fullmatch(prefix) else None


class ApiKeyUser:
    """The principal behind an API key: not a Django user, never staff."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False
    pk = None

    def __init__(self, key: ApiKey):
        self.key = key
        self.username = f"api-key:{key.prefix}"

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates `X-API-Key: <prefix>.<secret>`; request.auth is the ApiKey row."""

    header = "HTTP_X_API_KEY"

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        raw = request.META.get(self.header)
        if not raw:
            return None
        key = cached_key(raw)
        if key is None:
            # Only keys this process has not verified yet can be guesses: the hot path pays no lockout check.
            attempt = SignIn(client_address(request.META), key_credential(raw))
            attempt.check()
            generation = key_generation()
            try:
                key = self._verify(raw)
            except exceptions.AuthenticationFailed:
                attempt.failed()
                raise
            remember_key(raw, key, generation)
        if key.has_expired:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return ApiKeyUser(key), key

    def _verify(self, raw: str) -> ApiKey:
        key = verify_api_key(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing.
        return 'Api-Key realm="api", header="X-API-Key"'


class JwtAuthentication(JWTAuthentication):
    """simplejwt's bearer tokens, with a plain answer for the common mistake of sending an API key as one."""

    def get_validated_token(self, raw_token: bytes) -> Token:
        if _API_KEY_SHAPE.match(raw_token):
            raise exceptions.AuthenticationFailed(API_KEY_AS_BEARER)
        return super().get_validated_token(raw_token)
