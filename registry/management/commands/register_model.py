import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError

from core.errors import ApplicationError
from core.fields import JSONObjectField, StringMapField
from registry import selectors, services
from registry.errors import RegisteredModelNotFound
from registry.management.progress import wait_for_validation
from registry.models import Flavor, Task, VersionStatus
from registry.serializers import SignatureField

_JSON_OPTIONS = {"signature": SignatureField, "metrics": JSONObjectField, "tags": StringMapField}


class Command(BaseCommand):
    help = "Register a model artifact as a new version (creating the model if needed). Prints the version last."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--name", required=True)
        parser.add_argument("--flavor", required=True, choices=Flavor.values)
        parser.add_argument("--task", choices=Task.values, default=Task.OTHER, help="for a new model")
        parser.add_argument("--alias", help="point this alias at the new version")
        parser.add_argument("--input-example", type=Path, help="a few real rows: CSV with a header, or JSON records")
        parser.add_argument("--signature", help="JSON (or @FILE), e.g. '{\"columns\": [{\"name\": \"country\", "
                                                "\"dtype\": \"string\", \"nullable\": false}]}'")
        parser.add_argument("--metrics", help="JSON object (or @FILE), e.g. '{\"accuracy\": 0.93}'")
        parser.add_argument("--tags", help="JSON object of strings (or @FILE), e.g. '{\"team\": \"growth\"}'")
        parser.add_argument("--description", default="")
        parser.add_argument("--wait", action="store_true", help="wait until validation ends")
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait with --wait")

    def handle(self, *args, path: Path, name: str, flavor: str, task: str, alias: str | None, wait: bool,
               timeout: float, **options):
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        example = options.get("input_example")
        if example is not None and not example.is_file():
            raise CommandError(f"--input-example: {example} is not a file")
        fields = {key: _json_option(key, value) for key in _JSON_OPTIONS if (value := options.get(key)) is not None}
        try:
            version = self._register(path, name=name, flavor=flavor, task=task, example=example,
                                     description=options.get("description") or "", **fields)
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

    def _register(self, path: Path, *, name: str, flavor: str, task: str, example: Path | None, **fields):
        try:
            model = selectors.registered_model_get(name)
        except RegisteredModelNotFound:
            model = services.registered_model_create(name=name, task=task)
        with path.open("rb") as handle:
            if example is None:
                return services.model_version_create(model=model, artifact=handle, flavor=flavor, **fields)
            with example.open("rb") as rows:
                return services.model_version_create(model=model, artifact=handle, flavor=flavor,
                                                     input_example=rows, **fields)


def _json_option(key: str, value: str) -> dict:
    """A JSON option's value (`@FILE` reads it from a file), checked as the API checks that field."""
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
    except OSError as exc:
        raise CommandError(f"--{key}: cannot read {value[1:]}: {exc.strerror or exc}") from None
    try:
        return _JSON_OPTIONS[key]().run_validation(text)
    except ValidationError as exc:
        raise CommandError(f"--{key}: {_first_message(exc.detail)}") from None


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        return f"{key}: {_first_message(value)}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return json.dumps(detail) if not isinstance(detail, str) else str(detail)
