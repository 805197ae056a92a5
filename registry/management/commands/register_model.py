from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from registry import selectors, services
from registry.errors import RegisteredModelNotFound
from registry.management.progress import wait_for_validation
from registry.models import Flavor, Task, VersionStatus


class Command(BaseCommand):
    help = "Register a model artifact as a new version (creating the model if needed). Prints the version last."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--name", required=True)
        parser.add_argument("--flavor", required=True, choices=Flavor.values)
        parser.add_argument("--task", choices=Task.values, default=Task.OTHER, help="for a new model")
        parser.add_argument("--alias", help="point this alias at the new version")
        parser.add_argument("--wait", action="store_true", help="wait until validation ends")
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait with --wait")

    def handle(self, *args, path: Path, name: str, flavor: str, task: str, alias: str | None, wait: bool,
               timeout: float, **options):
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        try:
            version = self._register(path, name=name, flavor=flavor, task=task)
            if wait:
                version = wait_for_validation(version, timeout_s=timeout, stream=self.stderr)
            if alias:
                services.model_alias_set(model=version.model, alias=alias, version_number=version.version)
                self.stderr.write(f"{name}@{alias} -> v{version.version}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if wait and version.status == VersionStatus.FAILED:
            raise CommandError(f"version {version.version} failed validation: {version.status_reason}")
        self.stdout.write(str(version.version))

    def _register(self, path: Path, *, name: str, flavor: str, task: str):
        try:
            model = selectors.registered_model_get(name)
        except RegisteredModelNotFound:
            model = services.registered_model_create(name=name, task=task)
        with path.open("rb") as handle:
            return services.model_version_create(model=model, artifact=handle, flavor=flavor)
