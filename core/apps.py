from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Access"

    def ready(self) -> None:
        from core import checks, schema  # noqa: F401  (register the deploy check and the OpenAPI auth extension)
