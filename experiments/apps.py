from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        # Serving knows no experiments: it asks the hooks registered here on every request.
        from experiments.hooks import router
        from experiments.services import deployment_stop_veto, deployment_version_veto
        from inference.deployments import services
        from inference.predict.contract import hooks

        hooks.register(router)
        if deployment_stop_veto not in services.STOP_VETOES:
            services.STOP_VETOES.append(deployment_stop_veto)
        if deployment_version_veto not in services.VERSION_VETOES:
            services.VERSION_VETOES.append(deployment_version_veto)
