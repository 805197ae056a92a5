from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from inference.deployments import selectors, services


class Command(BaseCommand):
    help = "Undeploy an endpoint: its workers drain and stop; the deployment stays as history."

    def add_arguments(self, parser):
        parser.add_argument("endpoint")

    def handle(self, *args, endpoint, **options):
        try:
            deployment = services.deployment_stop(deployment=selectors.deployment_get_live(endpoint))
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{deployment.endpoint} {deployment.status}")
