from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Serving"

    def ready(self) -> None:
        # The registry refuses to delete versions that live deployments serve, without importing us.
        from inference.deployments.selectors import deployments_using_version
        from registry.selectors import IN_USE_PROVIDERS

        if deployments_using_version not in IN_USE_PROVIDERS:
            IN_USE_PROVIDERS.append(deployments_using_version)
        from core.health import READINESS_CHECKS
        from inference.modelserver.health import model_server_check
        from inference.modelserver.reach import instances_check

        READINESS_CHECKS["model_server"] = model_server_check
        READINESS_CHECKS["model_server_instances"] = instances_check
