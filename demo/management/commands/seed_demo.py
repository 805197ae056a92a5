import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from registry import selectors, services
from registry.errors import ModelVersionNotFound, RegisteredModelNotFound
from registry.models import RegisteredModel, VersionStatus

ALIAS = "production"


class Command(BaseCommand):
    help = ("Train the demo models on generated data and register them with the 'production' alias (and "
            "churn-logreg's candidate version 2 with 'staging'). Idempotent.")

    def handle(self, *args, **options):
        from demo.training import DEMO_CANDIDATES, DEMO_MODEL_NAMES  # sklearn/torch: imported here only

        wanted = [(name, ALIAS) for name in DEMO_MODEL_NAMES] + list(DEMO_CANDIDATES)
        if all(self._already_seeded(name, alias) for name, alias in wanted):
            for name in DEMO_MODEL_NAMES:
                self.stderr.write(f"{name}: already seeded ({name}@{ALIAS})")
        else:
            self._train_and_register()
        for name in DEMO_MODEL_NAMES:
            self._ensure_deployed(name)
        self.stdout.write(f"seeded {len(DEMO_MODEL_NAMES)} demo models")

    def _ensure_deployed(self, name: str) -> None:
        """Each demo model serves at an endpoint of its own name, following its production alias."""
        from inference.deployments import services as serving_services
        from inference.models import LIVE, Deployment

        if Deployment.objects.filter(LIVE, endpoint=name).exists():
            return
        serving_services.deployment_create(endpoint=name, model=name, alias=ALIAS, follow_alias=True)
        self.stderr.write(f"  deployed {name}@{ALIAS} at /api/v1/predict/{name}")

    def _train_and_register(self) -> None:
        from demo.training import build_demo_candidates, build_demo_models

        with tempfile.TemporaryDirectory(prefix="sp-demo-") as folder:
            self.stderr.write("Training demo models on generated data...")
            # The candidates after the five: churn-logreg's first version is production's, its second staging's.
            demos = build_demo_models(Path(folder)) + build_demo_candidates(Path(folder))
            for index, demo in enumerate(demos, start=1):
                self.stderr.write(f"[{index}/{len(demos)}] {demo.name}")
                self._seed(demo)

    def _seed(self, demo) -> None:
        model = self._model(demo)
        if self._has_usable(model, demo.alias):
            self.stderr.write(f"  already seeded ({model.name}@{demo.alias})")
            return
        try:
            with demo.path.open("rb") as handle:
                version = services.model_version_create(
                    model=model, artifact=handle, flavor=demo.flavor, signature=demo.signature,
                    metrics=demo.metrics, params=demo.params, tags=demo.tags, description=demo.description,
                    input_example=demo.input_example,
                )
            # Validation loads the artifact in a sandboxed child process, as the background job would.
            version = services.model_version_validate(version_id=version.pk) or version
            if version.status != VersionStatus.READY:
                raise CommandError(f"{demo.name} failed validation: {version.status_reason}")
            services.model_alias_set(model=model, alias=demo.alias, version_number=version.version)
        except ApplicationError as exc:
            raise CommandError(f"{demo.name}: {exc.message}") from None
        self.stderr.write(f"  registered v{version.version}, {model.name}@{demo.alias} -> v{version.version}")

    def _model(self, demo) -> RegisteredModel:
        try:
            return selectors.registered_model_get(demo.name)
        except RegisteredModelNotFound:
            return services.registered_model_create(name=demo.name, task=demo.task,
                                                    description=demo.description, tags=demo.tags)

    def _already_seeded(self, name: str, alias: str) -> bool:
        try:
            return self._has_usable(selectors.registered_model_get(name), alias)
        except RegisteredModelNotFound:
            return False

    def _has_usable(self, model: RegisteredModel, alias: str) -> bool:
        try:
            version = selectors.model_version_get(model, alias)
        except ModelVersionNotFound:
            return False
        return version.status == VersionStatus.READY
