"""Principals for access tests: anonymous, predict key, manage key, staff, plain user."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from core.services import api_key_create


@dataclass
class Principals:
    anonymous: APIClient
    predict: APIClient
    manage: APIClient
    staff: APIClient
    user: APIClient


def key_client(scope: str, name: str | None = None) -> APIClient:
    _, secret = api_key_create(name=name or f"{scope}-key", scope=scope)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    return client


def user_client(username: str, *, staff: bool) -> APIClient:
    user = get_user_model().objects.create_user(username, password="pw-" + username, is_staff=staff)
    client = APIClient()
    client.force_login(user)
    return client


def principals() -> Principals:
    return Principals(
        anonymous=APIClient(), predict=key_client("predict"), manage=key_client("manage"),
        staff=user_client("staff", staff=True), user=user_client("member", staff=False),
    )


def make_model(name: str = "churn", task: str = "classification", **fields):
    from registry.services import registered_model_create

    return registered_model_create(name=name, task=task, **fields)
