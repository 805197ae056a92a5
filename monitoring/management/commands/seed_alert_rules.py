from django.core.management.base import BaseCommand

from monitoring.defaults import DEFAULT_RULES
from monitoring.models import AlertRule
from monitoring.services.alerts import alert_rule_create


class Command(BaseCommand):
    help = ("Create the default alert rules of the seed documents (error rate > 5%, p95 > 1000 ms, cache miss rate "
            "> 50%, failed health checks) for every deployment, notifications off; rules that exist by name are "
            "left as they are.")

    def handle(self, *args, **options):
        created = [alert_rule_create(**rule, notify=False)
                   for rule in DEFAULT_RULES if not AlertRule.objects.filter(name=rule["name"]).exists()]
        self.stdout.write(f"{len(created)} default alert rule(s) created, "
                          f"{len(DEFAULT_RULES) - len(created)} already there")
