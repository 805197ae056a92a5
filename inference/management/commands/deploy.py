import time

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from inference.deployments import services
from inference.models import Deployment, DeploymentStatus


class Command(BaseCommand):
    help = "Deploy a model version (by number or alias) to an endpoint; with --wait, until it serves."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Django's own --version (prints Django's version) would clash with ours (a model version).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("endpoint")
        parser.add_argument("--model", required=True)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--version", type=int)
        target.add_argument("--alias")
        parser.add_argument("--follow-alias", action="store_true", help="roll to the alias's version when it moves")
        parser.add_argument("--replicas", type=int)
        parser.add_argument("--max-batch-size", type=int)
        parser.add_argument("--batch-timeout-ms", type=float)
        parser.add_argument("--device", choices=["cpu", "cuda", "auto"])
        parser.add_argument("--wait", action="store_true", help="wait until the deployment is ready (or failed)")
        parser.add_argument("--timeout", type=float, default=300.0)

    def handle(self, *args, endpoint, model, version, alias, follow_alias, wait, timeout, **options):
        knobs = {name: options[name] for name in ("replicas", "max_batch_size", "batch_timeout_ms", "device")
                 if options.get(name) is not None}
        try:
            deployment = services.deployment_create(endpoint=endpoint, model=model, version=version, alias=alias,
                                                    follow_alias=follow_alias, **knobs)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"deployed {deployment}")
        if wait:
            deployment = self._wait(deployment, timeout)
        self.stdout.write(f"{deployment.endpoint} {deployment.status}")

    def _wait(self, deployment: Deployment, timeout: float) -> Deployment:
        deadline, frames = time.monotonic() + timeout, "|/-\\"
        tick = 0
        while time.monotonic() < deadline:
            deployment.refresh_from_db()
            if deployment.status in (DeploymentStatus.READY, DeploymentStatus.FAILED):
                break
            self.stderr.write(f"\r{frames[tick % 4]} {deployment.endpoint}: {deployment.status} "
                              f"{deployment.status_reason}   ", ending="")
            tick += 1
            time.sleep(0.25)
        self.stderr.write("")
        if deployment.status == DeploymentStatus.FAILED:
            raise CommandError(f"{deployment.endpoint} failed: {deployment.status_reason}")
        if deployment.status != DeploymentStatus.READY:
            raise CommandError(f"{deployment.endpoint} is still {deployment.status} after {timeout:.0f}s "
                               "(is the model server running? `manage.py run_model_server`)")
        return deployment
