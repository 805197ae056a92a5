from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Access"

    def ready(self) -> None:
        from core import schema  # noqa: F401  (registers the OpenAPI auth extension)
