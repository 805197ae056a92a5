from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo models (`manage.py seed_demo`): trained on generated data, registered and deployed like a
    team's own. Above every other app: it only calls their services."""

    name = "demo"
    verbose_name = "Demo models"
