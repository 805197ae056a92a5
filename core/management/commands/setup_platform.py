from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.locks import database_lock


class Command(BaseCommand):
    help = ("Applies the migrations and seeds the demo models and default alert rules, once per database: "
            "instances started together wait for one another's lock (scripts/serve.py runs it).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Without the demo models.")

    def handle(self, *args: Any, **options: Any) -> None:
        with database_lock("setup"):
            pending = self._pending_migrations()
            if pending:
                call_command("migrate", "--noinput", verbosity=0)
            self.stdout.write(f"setup: applied {pending} migration(s)" if pending else "setup: no migration to apply")
            # Both are idempotent; under the lock a second instance only finds the work done.
            if not options["no_demo"]:
                call_command("seed_demo", stdout=self.stdout, stderr=self.stderr)
            call_command("seed_alert_rules", stdout=self.stdout, stderr=self.stderr)

    def _pending_migrations(self) -> int:
        executor = MigrationExecutor(connection)
        return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
