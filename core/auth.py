import hashlib
import threading
import time

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.models import ApiKey

_cache_lock = threading.Lock()
_verified: dict[str, tuple[ApiKey, float]] = {}
_MAX_CACHED = 10_000


def cached_key(raw: str) -> ApiKey | None:
    """Verified keys are remembered per process for API_KEY_CACHE_S, keyed by a hash of the secret:
    the prediction hot path then costs no DB query; a revocation takes effect within that window."""
    entry = _verified.get(hashlib.sha256(raw.encode()).hexdigest())
    if entry and entry[1] > time.monotonic():
        return entry[0]
    return None


def _remember(raw: str, key: ApiKey) -> None:
    ttl = settings.API_KEY_CACHE_S
    if ttl <= 0:
        return
    with _cache_lock:
        if len(_verified) >= _MAX_CACHED:
            _verified.clear()
        _verified[hashlib.sha256(raw.encode()).hexdigest()] = (key, time.monotonic() + ttl)


def forget_cached_keys() -> None:
    with _cache_lock:
        _verified.clear()


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

    def authenticate(self, request: Request):
        raw = request.META.get(self.header)
        if not raw:
            return None
        key = cached_key(raw)
        if key is None:
            key = self._verify(raw)
            _remember(raw, key)
        if key.has_expired:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return ApiKeyUser(key), key

    def _verify(self, raw: str) -> ApiKey:
        try:
            return ApiKey.objects.get_from_key(raw)
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.") from None

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing.
        return 'Api-Key realm="api", header="X-API-Key"'
