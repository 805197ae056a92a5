"""The model server's control loop (run by `manage.py run_model_server`).

Every tick it reads the live deployments, decides which stay loaded (memory cap, scale-to-zero),
hands the wanted worker processes to the Django-free ProcessManager, records what happened in the
deployments table and rewrites the routing table the web processes read. A new generation (new
version, device, torch options) is started beside the serving one and takes over only when ready,
so rolling a deployment never fails a request.
"""

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from inference import metrics
from inference import platform_config as runtime_config
from inference.deployments import services
from inference.models import LIVE, Deployment, DeploymentStatus
from inference.modelserver.instance import Instance
from inference.runtime.contract.protocol import MemberSpec, WorkerSpec
from inference.runtime.contract.routes import ControlServer, Route, RoutesWriter, ensure_private_dir
from inference.runtime.supervisor.manager import ProcessManager, WorkerEvent
from inference.runtime.supervisor.policy import LoadCandidate, plan_loaded
from registry import storage
from registry.models import ModelVersion

logger = logging.getLogger(__name__)
STATS_EVERY_S = 2.0
# An old generation keeps running this long after the new one takes over, so every web process has
# re-read the routing table before the old sockets start refusing work.
RETIRE_GRACE_S = 3.0
THROUGHPUT_WINDOW_S = 30.0
_CHILD_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                   "MKL_NUM_THREADS", "TORCH_HOME", "SERVINGPLATFORM_TEST_HOOKS")

WorkerKey = tuple[int, int, int]


@dataclass
class Tracked:
    """What the loop remembers about one deployment between ticks."""

    serving_generation: int | None = None
    retiring: dict[int, float] = field(default_factory=dict)
    specs: dict[int, list[WorkerSpec]] = field(default_factory=dict)
    route_info: dict[int, dict] = field(default_factory=dict)
    wanted_at: float | None = None
    last_request_at: float | None = None
    request_samples: deque = field(default_factory=lambda: deque(maxlen=64))
    recorded: tuple[str, str] | None = None
    # Why the current generation's artifact could not be given to workers (refused sha256, store away).
    artifact_problem: str | None = None


def child_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in _CHILD_ENV_KEYS if key in os.environ}
    env["PYTHONPATH"] = str(settings.BASE_DIR)
    return env


def cache_scope(deployment: Deployment) -> str:
    """What the prediction cache files a deployment's answers under: everything that decides them.

    Deployments of one version share entries. An ensemble's answers (its members and weights) and a
    quantized model's are their own: under the version alone, one would be served the other's.
    """
    version = deployment.model_version
    scope = f"{version.pk}:{version.sha256}"
    if deployment.ensemble:
        members = sorted((member["version"], float(member["weight"])) for member in deployment.ensemble)
        scope += f":ensemble:{float(deployment.weight)}:{members}"
    if deployment.quantize:
        scope += ":int8"
    return scope


class ModelServer:
    def __init__(self, *, poll_s: float | None = None, out=sys.stderr):
        self.poll_s = poll_s or settings.MODEL_SERVER_POLL_S
        self.dir = Path(settings.MODEL_SERVER_DIR)
        ensure_private_dir(self.dir)
        self.events: queue.Queue[WorkerEvent] = queue.Queue()
        self.manager = ProcessManager(
            cwd=str(settings.BASE_DIR), env=child_env(), load_timeout_s=settings.MODEL_LOAD_TIMEOUT_S,
            max_crashes=settings.MODEL_SERVER_MAX_CRASHES, on_event=self.events.put,
        )
        self.routes = RoutesWriter(self.dir / "routes.json")
        self.control = ControlServer(self.dir / "control.sock", self._handle_control)
        self.tracked: dict[int, Tracked] = {}
        self.endpoints: dict[str, int] = {}
        self.stop_requested = threading.Event()
        self.last_stats = 0.0
        self.out = out
        self.pool = settings.MODEL_SERVER_POOL
        # endpoint -> ready worker sockets, swapped whole each tick: the gateway's thread reads it.
        self.serving: dict[str, tuple[str, ...]] = {}
        self.instance = Instance(lambda endpoint: self.serving.get(endpoint, ()))

    # --- lifecycle ------------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_requested.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_requested.set())
        self.control.start()
        self.instance.start()
        logger.info("model server %s started (pool %s, pid %s, dir %s, listening on %s)", self.instance.name,
                    self.pool, os.getpid(), self.dir, self.instance.address or "no TCP address")
        try:
            while not self.stop_requested.is_set():
                self.tick()
                self.stop_requested.wait(self.poll_s)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        logger.info("model server draining workers")
        self.control.close()
        self.routes.write({})
        self.instance.withdraw()
        self.manager.shutdown()
        self.instance.stop()
        logger.info("model server stopped")

    # --- one tick -------------------------------------------------------------------------

    def tick(self) -> None:
        close_old_connections()
        deployments = self._live_deployments()
        self._forget_gone(deployments)
        planned_at = time.time()
        loaded = self._plan(deployments, planned_at)
        desired = {}
        for deployment in deployments:
            if deployment.pk in loaded:
                desired.update(self._desired_workers(deployment))
            else:
                self._unload(deployment, planned_at)
        self.manager.reconcile(desired)
        self._drain_events()
        snapshot = self.manager.snapshot()
        routes = {d.endpoint: self._settle(d, snapshot, d.pk in loaded) for d in deployments}
        self.routes.write(routes)
        self.serving = {endpoint: route.sockets for endpoint, route in routes.items() if route.serving}
        self.instance.announce(routes)
        if time.monotonic() - self.last_stats >= STATS_EVERY_S:
            self._record_stats(deployments, snapshot)

    def _live_deployments(self) -> list[Deployment]:
        # Only this instance's pool: a GPU pool's deployments are not loaded by CPU model servers.
        deployments = list(Deployment.objects.filter(LIVE, pool=self.pool).select_related("model", "model_version"))
        for deployment in deployments:
            if deployment.follow_alias and services.deployment_follow_alias(deployment=deployment):
                deployment.refresh_from_db()
        self.endpoints = {d.endpoint: d.pk for d in deployments}
        return deployments

    def _forget_gone(self, deployments: list[Deployment]) -> None:
        live = {d.pk for d in deployments}
        for deployment_id in [key for key in self.tracked if key not in live]:
            del self.tracked[deployment_id]
        self.instance.forget(keep=live)

    def _plan(self, deployments: list[Deployment], now: float) -> set[int]:
        candidates = [
            LoadCandidate(deployment_id=d.pk, scale_to_zero=d.scale_to_zero, idle_ttl_s=d.idle_ttl_s,
                          last_request_at=self._tracked(d).last_request_at, wanted_at=self._tracked(d).wanted_at,
                          loaded=bool(self._tracked(d).specs))
            for d in deployments
        ]
        return plan_loaded(candidates, max_loaded=runtime_config.current_config()["max_loaded_models"], now=now)

    def _tracked(self, deployment: Deployment) -> Tracked:
        return self.tracked.setdefault(deployment.pk, Tracked())

    def _unload(self, deployment: Deployment, planned_at: float) -> None:
        tracked = self._tracked(deployment)
        if tracked.specs:
            logger.info("unloading idle deployment %s (scale to zero / memory cap)", deployment.endpoint)
        tracked.specs.clear()
        tracked.route_info.clear()
        tracked.serving_generation = None
        # A wake that arrived after this tick's plan is kept for the next tick, not lost.
        if tracked.wanted_at is not None and tracked.wanted_at <= planned_at:
            tracked.wanted_at = None

    # --- worker specs ---------------------------------------------------------------------

    def _desired_workers(self, deployment: Deployment) -> dict[WorkerKey, WorkerSpec]:
        tracked = self._tracked(deployment)
        current = deployment.generation
        try:
            if current not in tracked.specs or self._knobs_changed(tracked.specs[current][0], deployment):
                tracked.specs[current] = [self._spec(deployment, replica) for replica in range(deployment.replicas)]
                tracked.route_info[current] = self._route_info(deployment)
            if len(tracked.specs[current]) != deployment.replicas:
                tracked.specs[current] = [self._spec(deployment, replica) for replica in range(deployment.replicas)]
            tracked.artifact_problem = None
        except storage.ArtifactFetching:
            tracked.artifact_problem = None  # loading: a thread fetches it from the store, the loop goes on
        except storage.ArtifactUnavailable as exc:
            # No worker is started on bytes that are not the validated ones; a serving generation stays.
            tracked.artifact_problem = str(exc)
        now = time.monotonic()
        tracked.retiring = {gen: until for gen, until in tracked.retiring.items() if until > now}
        keep = {gen for gen in (current, tracked.serving_generation, *tracked.retiring)
                if gen is not None and gen in tracked.specs}
        for generation in [g for g in tracked.specs if g not in keep]:
            del tracked.specs[generation]
            tracked.route_info.pop(generation, None)
        return {(deployment.pk, generation, spec.replica): spec
                for generation in keep for spec in tracked.specs[generation]}

    def _knobs_changed(self, spec: WorkerSpec, deployment: Deployment) -> bool:
        return (spec.max_batch_size, spec.batch_timeout_ms, spec.max_queue, spec.threads) != (
            deployment.max_batch_size, deployment.batch_timeout_ms, deployment.max_queue, deployment.torch_threads)

    def _spec(self, deployment: Deployment, replica: int) -> WorkerSpec:
        version = deployment.model_version
        return WorkerSpec(
            socket_path=str(self.dir / f"w{deployment.pk}-{deployment.generation}-{replica}.sock"),
            deployment_id=deployment.pk, endpoint=deployment.endpoint, generation=deployment.generation,
            replica=replica, task=deployment.model.task, members=self._members(deployment),
            signature=version.signature or {}, classes=(version.signature or {}).get("classes"),
            device=deployment.device, threads=deployment.torch_threads, compile=deployment.torch_compile,
            quantize=deployment.quantize, max_batch_size=deployment.max_batch_size,
            batch_timeout_ms=deployment.batch_timeout_ms, max_queue=deployment.max_queue,
            warmup_requests=deployment.warmup_requests, input_example=version.input_example,
        )

    def _members(self, deployment: Deployment) -> list[MemberSpec]:
        members = [self._member(deployment.model_version, deployment.weight)]
        numbers = {m["version"]: m["weight"] for m in deployment.ensemble}
        for version in ModelVersion.objects.filter(model=deployment.model, version__in=list(numbers)):
            members.append(self._member(version, numbers[version.version]))
        return members

    def _member(self, version: ModelVersion, weight: float) -> MemberSpec:
        # A file on this host: the local store's, or a copy fetched from S3 whose sha256 was checked.
        path = storage.local_artifact(version.artifact_path, version.sha256, background=True)
        return MemberSpec(path=str(path), format=version.format, sha256=version.sha256, weight=weight,
                          version_id=version.pk)

    def _route_info(self, deployment: Deployment) -> dict:
        version = deployment.model_version
        return {
            "endpoint": deployment.endpoint, "deployment_id": deployment.pk, "model": deployment.model.name,
            "version": version.version, "model_version_id": version.pk, "sha256": version.sha256,
            "generation": deployment.generation, "task": deployment.model.task, "signature": version.signature or {},
            "classes": (version.signature or {}).get("classes"), "ensemble": bool(deployment.ensemble),
            "cache_scope": cache_scope(deployment),
        }

    # --- events, status and routes --------------------------------------------------------

    def _drain_events(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            logger.info("worker %s: %s %s", event.key, event.kind, event.detail)

    def _settle(self, deployment: Deployment, snapshot: dict, loaded: bool) -> Route:
        tracked = self._tracked(deployment)
        if not loaded:
            return self._route(deployment, tracked, status="scaled_to_zero", sockets=[], reason="idle: scaled to zero")
        current = deployment.generation
        ready = self._ready_sockets(deployment.pk, current, snapshot)
        if ready and tracked.serving_generation != current:
            if tracked.serving_generation is not None:
                tracked.retiring[tracked.serving_generation] = time.monotonic() + RETIRE_GRACE_S
            tracked.serving_generation = current  # the new generation takes over; the old one drains
        serving = tracked.serving_generation
        sockets = self._ready_sockets(deployment.pk, serving, snapshot) if serving is not None else []
        failure = tracked.artifact_problem or self._generation_failure(deployment.pk, current, snapshot)
        status, reason = self._status(deployment, serving, sockets, failure)
        self._record(deployment, status, reason)
        return self._route(deployment, tracked, status=status, sockets=sockets, reason=reason)

    def _ready_sockets(self, deployment_id: int, generation: int, snapshot: dict) -> list[str]:
        return [state.socket_path for (dep, gen, _), state in sorted(snapshot.items())
                if dep == deployment_id and gen == generation and state.state == "ready"]

    def _generation_failure(self, deployment_id: int, generation: int, snapshot: dict) -> str | None:
        states = [s for (dep, gen, _), s in snapshot.items() if dep == deployment_id and gen == generation]
        if states and all(s.state == "failed" for s in states):
            return states[0].last_error or "the workers failed"
        return None

    def _status(self, deployment, serving, sockets, failure) -> tuple[str, str]:
        if failure and not sockets:
            return DeploymentStatus.FAILED, failure
        if failure:
            return DeploymentStatus.READY, f"rollout of generation {deployment.generation} failed: {failure}; " \
                                           f"still serving generation {serving}"
        if sockets:
            waiting = serving != deployment.generation
            return DeploymentStatus.READY, "rolling out a new generation" if waiting else ""
        return DeploymentStatus.LOADING, "loading the model"

    def _record(self, deployment: Deployment, status: str, reason: str) -> None:
        tracked = self._tracked(deployment)
        if tracked.recorded == (status, reason) and deployment.status in (status, DeploymentStatus.READY):
            return
        # This instance's own row, then the deployment's status as all live instances add it up.
        self.instance.record_status(deployment, status, reason)
        tracked.recorded = (status, reason)
        if status == DeploymentStatus.FAILED:
            logger.warning("deployment %s failed: %s", deployment.endpoint, reason)

    def _route(self, deployment: Deployment, tracked: Tracked, *, status: str, sockets: list, reason: str) -> Route:
        generation = tracked.serving_generation or deployment.generation
        info = tracked.route_info.get(generation) or self._route_info(deployment)
        return Route(**info, status=status, reason=reason or "", sockets=tuple(sockets),
                     timeout_ms=deployment.timeout_ms, max_rows=deployment.max_rows, cache=deployment.cache_enabled,
                     log_predictions=deployment.log_predictions,
                     alias=deployment.alias if deployment.follow_alias else "")

    # --- control channel (web processes waking scaled-to-zero deployments) -----------------

    def _handle_control(self, message: dict) -> dict:
        if message.get("op") != "wake":
            return {"ok": False, "error": {"code": "unknown_op", "message": "unknown op"}}
        deployment_id = self.endpoints.get(str(message.get("endpoint")))
        if deployment_id is None:
            return {"ok": False, "error": {"code": "not_found", "message": "no such endpoint"}}
        self.tracked.setdefault(deployment_id, Tracked()).wanted_at = time.time()
        return {"ok": True}

    # --- stats ----------------------------------------------------------------------------

    def _record_stats(self, deployments: list[Deployment], snapshot: dict) -> None:
        self.last_stats = time.monotonic()
        # The workers' figures sit under "stats" in their answers (an unreachable one has none).
        stats = {key: answer.get("stats") or {} for key, answer in self.manager.collect_stats().items()}
        memory = 0.0
        for deployment in deployments:
            runtime = self._runtime(deployment, snapshot, stats)
            self.instance.record_runtime(deployment.pk, runtime)
            memory += runtime["memory_mb"] or 0
            self._export(deployment, runtime)
        self.instance.heartbeat(memory)

    def _runtime(self, deployment: Deployment, snapshot: dict, stats: dict) -> dict:
        tracked = self._tracked(deployment)
        keys = [key for key in snapshot if key[0] == deployment.pk]
        replicas = [self._replica(key, snapshot[key], stats.get(key, {})) for key in sorted(keys)]
        worker_stats = [stats[key] for key in keys if key in stats]
        last = max((s.get("last_request_at") or 0 for s in worker_stats), default=0) or None
        tracked.last_request_at = max(filter(None, [tracked.last_request_at, last]), default=None)
        total = sum(s.get("requests", 0) for s in worker_stats)
        tracked.request_samples.append((time.monotonic(), total))
        return {
            "loaded": any(r["state"] == "ready" for r in replicas), "serving_generation": tracked.serving_generation,
            "replicas": replicas, "load_ms": max((r["load_ms"] or 0 for r in replicas), default=None),
            "memory_mb": round(sum(r["memory_mb"] or 0 for r in replicas), 1),
            "queue_depth": sum(s.get("queue_depth", 0) for s in worker_stats),
            "throughput_rps": self._throughput(tracked), "last_request_at": tracked.last_request_at,
            "updated_at": time.time(),
        }

    def _replica(self, key: WorkerKey, state, stats: dict) -> dict:
        return {"generation": key[1], "replica": key[2], "state": state.state, "pid": state.pid,
                "load_ms": state.load_ms, "memory_mb": stats.get("memory_mb", state.memory_mb),
                "restarts": state.restarts, "last_error": state.last_error, "requests": stats.get("requests")}

    def _throughput(self, tracked: Tracked) -> float | None:
        samples = [s for s in tracked.request_samples if time.monotonic() - s[0] <= THROUGHPUT_WINDOW_S]
        if len(samples) < 2 or samples[-1][0] == samples[0][0]:
            return None
        rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        return round(max(rate, 0.0), 2)

    def _export(self, deployment: Deployment, runtime: dict) -> None:
        labels = (deployment.endpoint, deployment.model.name, str(deployment.model_version.version))
        metrics.QUEUE_DEPTH.labels(deployment.endpoint).set(runtime["queue_depth"])
        metrics.DEPLOYMENT_HEALTHY.labels(deployment.endpoint).set(int(deployment.status != DeploymentStatus.FAILED))
        metrics.WORKER_MEMORY.labels(deployment.endpoint).set((runtime["memory_mb"] or 0) * 1024 * 1024)
        if runtime["load_ms"]:
            metrics.MODEL_LOAD.labels(*labels).set(runtime["load_ms"] / 1000)

