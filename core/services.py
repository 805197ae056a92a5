from core.errors import InvalidInput
from core.models import ApiKey, Scope


def api_key_create(*, name: str, scope: str, owner=None) -> tuple[ApiKey, str]:
    """Returns the row and the plain key, which exists only here: only its hash is stored."""
    if scope not in Scope.values:
        raise InvalidInput(f"scope: must be one of {', '.join(Scope.values)}.")
    if not name.strip():
        raise InvalidInput("name: must not be blank.")
    return ApiKey.objects.create_key(name=name.strip(), scope=scope, owner=owner)
