from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        # Serving knows no experiments: it asks whatever hooks object is registered on every request.
        from experiments.hooks import router
        from experiments.services import deployment_stop_veto
        from inference import services, serving

        serving.experiment_hooks = router
        if deployment_stop_veto not in services.STOP_VETOES:
            services.STOP_VETOES.append(deployment_stop_veto)
