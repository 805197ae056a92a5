"""Prometheus figures for every model server instance, read from the rows the instances write.

The web process that is scraped answers for all instances, wherever they run: one scrape target sees every
host's model servers, and an instance that died shows as down instead of vanishing with its own exporter.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from inference.deployments.instances import deployment_instances, instance_health
from inference.deployments.selectors import deployment_list


class InstancesCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("sp_model_server_instance_up", "1 while the model server instance's heartbeat is "
                               "recent (MODEL_SERVER_HEARTBEAT_TTL_S)", labels=["instance", "pool"])
        age = GaugeMetricFamily("sp_model_server_instance_heartbeat_age_seconds", "Seconds since the instance's "
                                "last heartbeat", labels=["instance", "pool"])
        memory = GaugeMetricFamily("sp_model_server_instance_memory_bytes", "Memory of the instance's workers",
                                   labels=["instance", "pool"])
        for instance in instance_health():
            labels = [instance["name"], instance["pool"]]
            up.add_metric(labels, 1.0 if instance["live"] else 0.0)
            age.add_metric(labels, instance["heartbeat_age_s"])
            memory.add_metric(labels, (instance["memory_mb"] or 0.0) * 1024 * 1024)
        ready = GaugeMetricFamily("sp_deployment_instances_ready", "Live instances serving the deployment",
                                  labels=["endpoint"])
        live = list(deployment_list())
        for deployment_id, summary in deployment_instances(live).items():
            endpoint = next(d.endpoint for d in live if d.pk == deployment_id)
            ready.add_metric([endpoint], float(summary.ready))
        yield from (up, age, memory, ready)


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InstancesCollector())
    return generate_latest(registry)
