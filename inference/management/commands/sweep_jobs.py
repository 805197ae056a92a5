import logging

from django.conf import settings
from django.core.management.base import BaseCommand

from inference.jobs import tasks


class Command(BaseCommand):
    help = ("Expire async and batch jobs past JOB_TTL_SECONDS and reconcile active ones RQ no longer runs "
            "(re-queue, or fail with the reason). With --schedule, run RQ's cron scheduler, which queues this "
            "sweep every JOB_SWEEP_INTERVAL_S, and the other apps' periodic jobs (alert rules, drift, retention) "
            "at theirs, for the RQ workers (run it beside them).")

    def add_arguments(self, parser):
        parser.add_argument("--schedule", action="store_true", help="keep running and schedule the sweep")

    def handle(self, *args, schedule, **options):
        if schedule:
            logging.getLogger("rq.cron").setLevel(logging.INFO)
            self.stderr.write(f"scheduling the job sweep every {settings.JOB_SWEEP_INTERVAL_S} s" + "".join(
                f", {periodic.name} every {periodic.interval_s()} s" for periodic in tasks.PERIODIC))
            tasks.sweep_scheduler().start()
            return
        counts = tasks.sweep_jobs()
        self.stdout.write(" ".join(f"{name}={count}" for name, count in counts.items()))
