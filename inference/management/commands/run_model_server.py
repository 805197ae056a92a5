import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.modelserver.loop import ModelServer
from inference.runtime.contract.gateway import split_host_port

MIN_SECRET_CHARS = 16


class Command(BaseCommand):
    help = ("Run the model server: keeps worker processes (which hold the loaded models and batch requests) "
            "in line with the deployments table until SIGTERM/Ctrl-C, then drains them. With "
            "MODEL_SERVER_LISTEN=HOST:PORT it also serves other hosts, authenticated with MODEL_SERVER_SECRET.")

    def add_arguments(self, parser):
        parser.add_argument("--poll-ms", type=int, default=None, help="how often to reconcile (default 500)")

    def handle(self, *args, poll_ms: int | None, **options):
        check_listener()
        ModelServer(poll_s=poll_ms / 1000 if poll_ms else None).run()


def check_listener() -> None:
    """A listener reachable from other hosts is never started unauthenticated."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", settings.MODEL_SERVER_POOL):
        raise CommandError(f"MODEL_SERVER_POOL={settings.MODEL_SERVER_POOL!r}: lowercase letters, digits, - and _")
    if not settings.MODEL_SERVER_LISTEN:
        return
    try:
        split_host_port(settings.MODEL_SERVER_LISTEN)
    except ValueError:
        raise CommandError(f"MODEL_SERVER_LISTEN={settings.MODEL_SERVER_LISTEN!r} is not HOST:PORT") from None
    if len(settings.MODEL_SERVER_SECRET) < MIN_SECRET_CHARS:
        raise CommandError(f"MODEL_SERVER_LISTEN is set but MODEL_SERVER_SECRET is missing or shorter than "
                           f"{MIN_SECRET_CHARS} characters: refusing to accept unauthenticated connections")
    if bool(settings.MODEL_SERVER_TLS_CERT) != bool(settings.MODEL_SERVER_TLS_KEY):
        raise CommandError("MODEL_SERVER_TLS_CERT and MODEL_SERVER_TLS_KEY go together")
