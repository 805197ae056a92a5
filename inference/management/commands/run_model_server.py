from django.core.management.base import BaseCommand

from inference.modelserver.loop import ModelServer


class Command(BaseCommand):
    help = ("Run the model server: keeps worker processes (which hold the loaded models and batch requests) "
            "in line with the deployments table until SIGTERM/Ctrl-C, then drains them.")

    def add_arguments(self, parser):
        parser.add_argument("--poll-ms", type=int, default=None, help="how often to reconcile (default 500)")

    def handle(self, *args, poll_ms: int | None, **options):
        ModelServer(poll_s=poll_ms / 1000 if poll_ms else None).run()
