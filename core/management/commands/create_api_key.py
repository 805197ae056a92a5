from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from core.models import Scope
from core.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, alone on the last line; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--scope", choices=Scope.values, default=Scope.PREDICT)

    def handle(self, *args: Any, name: str, scope: str, **options: Any) -> None:
        try:
            key, secret = api_key_create(name=name, scope=scope)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"Created API key '{key.name}' (prefix {key.prefix}, scope {key.scope}). "
                          "Send it as the X-API-Key header; it cannot be shown again.")
        self.stdout.write(secret)
