from typing import cast

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model

from core.errors import InvalidInput
from core.invalidation import announce
from core.models import ApiKey, Scope


def api_key_create(*, name: str, scope: str, owner: AbstractBaseUser | None = None) -> tuple[ApiKey, str]:
    """Returns the row and the plain key, which exists only here: only its hash is stored."""
    if scope not in Scope.values:
        raise InvalidInput(f"scope: must be one of {', '.join(Scope.values)}.")
    if not name.strip():
        raise InvalidInput("name: must not be blank.")
    key, secret = ApiKey.objects.create_key(name=name.strip(), scope=scope, owner=owner)
    # The library's manager is not generic: it types its rows as AbstractAPIKey, and on ApiKey they are ours.
    return cast(ApiKey, key), secret


def api_keys_changed() -> None:
    """Call in the transaction that edits, revokes or deletes API keys: every process then drops the
    keys it verified, so a revocation holds at once instead of after API_KEY_CACHE_S."""
    announce("api_keys")


def full_clean(instance: Model, *, validate_unique: bool = True, validate_constraints: bool = True) -> None:
    """instance.full_clean() for services: a model-level refusal is a 400 naming the field."""
    try:
        instance.full_clean(validate_unique=validate_unique, validate_constraints=validate_constraints)
    except DjangoValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(f"{field}: {messages[0]}", details={"fields": exc.message_dict}) from None
