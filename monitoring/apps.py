from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # Serving knows no monitoring: it tells the sinks registered here of every prediction, the scheduler
        # queues the jobs added here (and the deployments' admin links to the pages monitoring/admin.py names).
        from django.conf import settings

        from inference.jobs import tasks as scheduled
        from inference.predict.contract import sinks
        from monitoring import tasks
        from monitoring.services.notify import DELIVER
        from monitoring.sink import sink

        sinks.register(sink)
        scheduled.JOB_FUNCTIONS.add(DELIVER)
        if not any(periodic.name.startswith("monitoring_") for periodic in scheduled.PERIODIC):
            scheduled.PERIODIC.extend([
                scheduled.Periodic("monitoring_write_log", tasks.write_log, lambda: settings.PREDICTION_LOG_WRITE_S,
                                   timeout_s=300),
                scheduled.Periodic("monitoring_evaluate_alerts", tasks.evaluate_alerts, lambda: settings.ALERT_EVAL_S,
                                   timeout_s=300),
                scheduled.Periodic("monitoring_compute_drift", tasks.compute_drift, lambda: settings.DRIFT_EVAL_S,
                                   timeout_s=600),
                scheduled.Periodic("monitoring_enforce_retention", tasks.enforce_retention,
                                   lambda: settings.MONITORING_RETENTION_S, timeout_s=1800),
            ])
