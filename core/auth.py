from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.models import ApiKey


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
        try:
            key = ApiKey.objects.get_from_key(raw)
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.") from None
        if key.has_expired:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return ApiKeyUser(key), key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing.
        return 'Api-Key realm="api", header="X-API-Key"'
