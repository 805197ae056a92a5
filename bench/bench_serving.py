"""Serving benchmark: the platform, started as `make serve` starts it, then each maintained peer and the two
floors serving the same scikit-learn models, one server at a time, under wrk, in one command. Run on demand,
never in CI (~11 minutes on 2 cores; the first run also creates the peers' virtualenvs, ~4 minutes of pip, and
trains the demo models).

    apt-get install -y wrk                                  # once, as root (Debian's wrk)
    .venv/bin/python bench/bench_serving.py                 # the working tree against every peer
    .venv/bin/python bench/bench_serving.py --ref HEAD --profile   # a clean export of a commit, plus py-spy
    .venv/bin/python bench/bench_serving.py --peers none    # the platform alone (~7 minutes)

What it runs (every figure is printed and saved to bench/out/serving-<time>.json):
  1. scripts/serve.py with PORT on a free port, WEB_WORKERS (--web-workers, default 2) and
     VAR_DIR=bench/out/var: its own private Redis, SQLite and model store, so a `make serve` beside it is
     untouched; the demo models are trained once and kept (--fresh retrains). THROTTLE_RATE_PREDICT is
     raised, or wrk would measure 429s; the throttle's Redis round trip is still paid. Its answers are
     checked against the models' own predict_proba first. Stopped with SIGINT before any peer starts.
  2. wrk with bench/serving_load.lua (a fresh random row per request) at 1, 16 and 64 connections, 2 threads,
     --warmup seconds then --duration seconds, on churn-logreg and fraud-forest; the platform's V2 infer
     route and its universal route; demand-mlp; batching off; the cache's hits and misses; with --profile,
     py-spy on the web and model processes (from the MLServer peer's venv).
  3. The peers (--peers, bench/peers: the HTTP floor, the in-process floor, KServe's ModelServer, PyTriton,
     MLServer), each in its own virtualenv under bench/.peers/ (created before anything is measured, with
     the project's scikit-learn version), each serving the platform's own production versions of the two
     models (exported from its registry as joblib to bench/out/platform-models), answers checked, then
     measured at --peer-connections (16 and 64) as bench_peers.py measures them.
  4. Tables: the platform; every peer; the platform against the best peer per cell (req/s and p99 ratios)
     and its share of the HTTP and in-process floors; the platform's V2 route against the V2 peers;
     batching on vs off; cache hit vs miss server time; CPU ms per request by process group (/proc); the
     issue's targets; with --profile, where the web and model processes spend their CPU.

Each run also reports the cores busy outside the benchmark ("other load"): on a shared machine, anything
above ~0.2 lowers every figure; CPU ms per request is the figure that noise moves least.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
LUA = BENCH / "serving_load.lua"
# (who, model, connections) -> one wrk run's figures: "platform" and each peer's name (bench/peers).
Table = dict[tuple[str, str, int], dict[str, Any]]
V2_PEERS = ("pytriton", "mlserver", "kserve-v2")  # the peers that speak the Open Inference Protocol
PEER_MODELS = OUT / "platform-models"  # the platform's production scikit-learn versions, as joblib for the peers
SKLEARN_MODELS = ("churn-logreg", "fraud-forest")
WIDTHS = {"churn-logreg": 10, "fraud-forest": 20, "demand-mlp": 8}
BATCHING_MODELS = ("fraud-forest", "demand-mlp")
BATCHING_ON = {"max_batch_size": 32, "batch_timeout_ms": 0}  # the deployment defaults: no added wait
# What seed_demo deploys with; a run stopped halfway (or a person) may have left other values in the DB.
DEPLOYMENT_DEFAULTS = {**BATCHING_ON, "torch_threads": None}
BATCHING_OFF = {"max_batch_size": 1, "batch_timeout_ms": 0}
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CORES = os.cpu_count() or 1  # torch's own default thread count, which the platform's default (1) replaces
KNOB_SETTLE_S = 2.5  # the model server applies deployment knobs on its next tick (every 0.5 s)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------------------------------


class Server:
    """A server started in its own session, so the terminal's Ctrl-C reaches only this script, which
    then stops it the documented way (SIGINT to the launcher, which stops its own children)."""

    def __init__(self, name: str, cmd: list[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.name, self.log_path = name, log_path
        self.handle = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self.handle, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in {timeout_s:.0f} s; killing its process group")
        # Whatever it left behind is in the session we created for it.
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.handle.close()

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check, server: Server, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            raise SystemExit(f"{server.name} exited while waiting for {what}:\n{server.tail()}")
        with suppress(OSError, http.client.HTTPException, ValueError):
            if check():
                return
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{server.tail()}")


# --- HTTP --------------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection, for set-up calls and the sequential cache measurements."""

    def __init__(self, port: int, key: str | None = None) -> None:
        self.port, self.key = port, key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["X-API-Key"] = self.key
        payload = None if body is None else json.dumps(body)
        try:
            response = self._send(method, path, payload, headers)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed an idle keep-alive connection: once more on a fresh one.
            response = self._send(method, path, payload, headers)
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data.decode(errors="replace")

    def _send(self, method: str, path: str, payload: str | None, headers: dict[str, str]):
        try:
            self.conn.request(method, path, payload, headers)
            return self.conn.getresponse()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next request opens a new connection
            raise

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.call(method, path, body)
        if status != 200:
            raise SystemExit(f"{method} {path} answered {status}: {data}")
        return data


# --- /proc: CPU by process group ---------------------------------------------------------------------


def _proc_table(exited_children: bool = False) -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, utime + stime in ticks, command line); with `exited_children`, plus cutime + cstime: the CPU
    of the children it has waited for (an RQ worker's work horses, gone by the time anyone looks)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), sum(int(v) for v in fields[11:15 if exited_children else 13]), cmd)
    return table


def _descendants(table: dict[int, tuple[int, int, str]], root: int) -> set[int]:
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in table.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found & set(table)


def platform_group(cmd: str, pid: int, model_pids: set[int]) -> str:
    if pid in model_pids:
        return "model worker"
    if "inference.runtime.worker" in cmd:
        return "other workers"
    if "gunicorn" in cmd:
        return "web"
    if "redis-server" in cmd:
        return "redis"
    return "other"  # launcher, model server supervisor, RQ worker


class CpuMeter:
    """CPU seconds per process group of one server tree, plus the whole machine's busy time."""

    def __init__(self, root: int, classify, *, exited_children: bool = False) -> None:
        self.root, self.classify, self.exited_children = root, classify, exited_children

    def snapshot(self) -> dict[str, Any]:
        table = _proc_table(self.exited_children)
        groups: Counter[str] = Counter()
        for pid in _descendants(table, self.root):
            _, ticks, cmd = table[pid]
            groups[self.classify(cmd, pid)] += ticks
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once waited for
        return {"groups": groups, "wrk_s": children.ru_utime + children.ru_stime, "machine": _machine_ticks()}

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any], requests: int) -> dict[str, Any]:
        per_request = {name: round((after["groups"][name] - before["groups"].get(name, 0)) / CLK_TCK * 1000
                                   / max(requests, 1), 3) for name in after["groups"]}
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        ours = sum(after["groups"].values()) - sum(before["groups"].values())
        wrk = (after["wrk_s"] - before["wrk_s"]) * CLK_TCK
        # Busy time of the whole machine that neither the server nor wrk accounts for: other load.
        outside = max(busy - ours - wrk, 0)
        cores = os.cpu_count() or 1
        return {"cpu_ms_per_request": per_request,
                "machine_busy_pct": round(100 * busy / max(total, 1), 1),
                "other_load_cores": round(cores * outside / max(total, 1), 2)}


def _machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- wrk ---------------------------------------------------------------------------------------------


def wrk(url: str, *, mode: str, width: int, connections: int, seconds: float, key: str = "",
        vary: bool = True, model: str = "") -> dict[str, Any]:
    threads = min(2, connections)  # wrk needs at least one connection per thread
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
           "--latency", "-s", str(LUA), url, "--", mode, str(width), "1" if vary else "0", key, model]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH ")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(line[len("BENCH "):])


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: list[dict[str, Any]] = []

    def run(self, label: str, url: str, *, meter: CpuMeter, metrics=None, **options) -> dict[str, Any]:
        """A warm-up run (discarded), then the measured one with CPU and batch-size accounting."""
        wrk(url, seconds=self.args.warmup, **options)
        batches_before = metrics() if metrics else None
        before = meter.snapshot()
        figures = wrk(url, seconds=self.args.duration, **options)
        figures.update(CpuMeter.delta(before, meter.snapshot(), figures["requests"]))
        if metrics:
            rows, count = (a - b for a, b in zip(metrics(), batches_before))
            # Observed once per request with the size of the forward pass it rode: a request-weighted mean.
            figures["batch_per_request"] = round(rows / count, 2) if count else None
        figures.update(label=label, connections=options["connections"])
        self.results.append(figures)
        problems = figures["non2xx"] + figures["socket_errors"]
        log(f"{label} c={options['connections']}: {figures['rps']:.0f} req/s, p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms" + (f"  ({problems} errors!)" if problems else ""))
        return figures


# --- the platform ------------------------------------------------------------------------------------


def platform_env(args: argparse.Namespace, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "VIRTUAL_ENV")}
    env.update(HOST="127.0.0.1", PORT=str(port), WEB_WORKERS=str(args.web_workers), VAR_DIR=str(args.var_dir),
               THROTTLE_RATE_PREDICT="100000000/min", THROTTLE_RATE_MANAGE="1000000/min")
    # Set here because serve.py's generated key file path must lie under the repository.
    env.setdefault("SECRET_KEY", "bench-serving-only-" + "k" * 40)
    return env


def source_tree(ref: str | None) -> Path:
    """The working tree, or a clean export of one commit: the working tree may hold someone's half-done
    edit, and a benchmark of a commit can be repeated and compared with another's."""
    if not ref:
        return ROOT
    tree = OUT / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True,
                            check=True).stdout.strip()
    log(f"serving commit {commit} ({ref}) from {tree.relative_to(ROOT)}")
    return tree


def start_platform(args: argparse.Namespace) -> tuple[Server, int, dict[str, str]]:
    if args.fresh:
        shutil.rmtree(args.var_dir, ignore_errors=True)
    args.var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = platform_env(args, port)
    server = Server("platform", [args.python, "scripts/serve.py"], env=env, cwd=args.tree,
                    log_path=OUT / "platform.log")
    log(f"platform: scripts/serve.py on port {port}, WEB_WORKERS={args.web_workers}, VAR_DIR={args.var_dir} "
        f"(log: {server.log_path.relative_to(ROOT)}); the first run trains the demo models (~2 min)")
    probe, started = Client(port), time.monotonic()
    wait_until("/health/ready", lambda: probe.call("GET", "/health/ready")[0] == 200, server, 600)
    log(f"platform ready after {time.monotonic() - started:.0f} s")
    return server, port, env


def create_key(args: argparse.Namespace, env: dict[str, str]) -> str:
    result = subprocess.run([args.python, "manage.py", "create_api_key", f"bench-{int(time.time())}",
                             "--scope", "manage"], cwd=args.tree, env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def predict_path(endpoint: str) -> str:
    return f"/api/v1/predict/{endpoint}"


def wait_for_endpoints(client: Client, server: Server) -> None:
    for endpoint, width in WIDTHS.items():
        body = {"inputs": [[0.5] * width]}
        path = predict_path(endpoint)
        wait_until(f"{endpoint} to answer", lambda path=path, body=body: client.call("POST", path, body)[0] == 200,
                   server, 300)


def model_worker_pid(client: Client, endpoint: str) -> set[int]:
    runtime = client.ok("GET", f"/api/v1/deployments/{endpoint}/").get("runtime") or {}
    return {replica["pid"] for replica in runtime.get("replicas", []) if replica.get("pid")}


def batch_counters(client: Client, endpoint: str):
    pattern = re.compile(r'^sp_batch_size_rows_(sum|count)\{endpoint="' + re.escape(endpoint) + r'".*\} (\S+)$')

    def read() -> tuple[float, float]:
        status, text = client.call("GET", "/metrics")
        found = {"sum": 0.0, "count": 0.0}
        for line in (text if status == 200 and isinstance(text, str) else "").splitlines():
            match = pattern.match(line)
            if match:
                found[match.group(1)] += float(match.group(2))
        return found["sum"], found["count"]

    return read


def set_batching(client: Client, endpoint: str, knobs: dict[str, Any]) -> None:
    client.ok("PATCH", f"/api/v1/deployments/{endpoint}/", knobs)


def reset_deployments(client: Client, server: Server) -> None:
    changed = False
    for endpoint in WIDTHS:
        current = client.ok("GET", f"/api/v1/deployments/{endpoint}/")
        knobs = {name: value for name, value in DEPLOYMENT_DEFAULTS.items() if current.get(name) != value}
        if knobs:
            log(f"{endpoint}: resetting {knobs} to the defaults")
            set_batching(client, endpoint, knobs)
            changed = True
    if changed:
        time.sleep(KNOB_SETTLE_S)  # a thread count back to the default takes a fresh worker process
        wait_for_endpoints(client, server)


def set_cache(client: Client, enabled: bool) -> None:
    client.ok("PATCH", "/api/v1/config", {"cache_enabled": enabled})
    time.sleep(1.2)  # every web process re-reads the config at most once a second


# --- the models the peers serve ----------------------------------------------------------------------


def project_facts(python: str) -> dict[str, str]:
    code = "import sys, sklearn; print(sys._base_executable); print(sklearn.__version__)"
    base, sklearn = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"base_python": base, "sklearn": sklearn}


def export_models(args: argparse.Namespace, env: dict[str, str], folder: Path) -> dict[str, Any]:
    """The platform's own production versions of the scikit-learn models, as the peers load them (joblib), so
    that every server answers with the very same estimators."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    subprocess.run([args.python, str(Path(__file__).resolve()), "--export-sklearn", str(folder)], cwd=args.tree,
                   env={**env, "DJANGO_SETTINGS_MODULE": "servingplatform.settings"}, check=True)
    return json.loads((folder / "expected.json").read_text())


def export_sklearn(folder: Path) -> None:
    """--export-sklearn, run by the project's venv in the served tree: the registry's production artifacts
    -> joblib."""
    sys.path.insert(0, os.getcwd())
    import django

    django.setup()
    import warnings

    import joblib
    import numpy as np
    import skops.io as sio

    from registry import storage
    from registry.models import ModelVersion

    expected = {}
    for name in SKLEARN_MODELS:
        version = ModelVersion.objects.get(model__name=name, aliases__name="production")
        path = str(storage.artifact_abspath(version.artifact_path))
        model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        (folder / name).mkdir()
        joblib.dump(model, folder / name / "model.joblib")
        rows = np.random.default_rng(7).uniform(-2, 2, (3, model.n_features_in_))
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        expected[name] = {"version": version.version, "n_features": int(model.n_features_in_),
                          "rows": rows.tolist(), "predict": model.predict(rows).tolist(),
                          "proba": model.predict_proba(rows).tolist()}
    (folder / "expected.json").write_text(json.dumps(expected))


def check_answers(expected: dict[str, Any], platform: Client) -> None:
    """The platform must give the exported model's own answers before any figure counts (each peer's are
    checked the same way before it is measured)."""
    for name, want in expected.items():
        for index, row in enumerate(want["rows"]):
            answer = platform.ok("POST", predict_path(name), {"inputs": [row]})
            label, proba = answer["predictions"][0], answer["probabilities"][0]
            close = all(abs(a - b) < 1e-9 for a, b in zip(proba, want["proba"][index]))
            if str(label) != str(want["predict"][index]) or not close:
                raise SystemExit(f"the platform answered {label} {proba} for {name} row {index}; "
                                 f"the model says {want['predict'][index]} {want['proba'][index]}")
    log(f"answers checked: the platform agrees with the models ({', '.join(expected)})")


# --- cache: server time of hits and misses -----------------------------------------------------------


def cache_latencies(client: Client, endpoint: str, requests: int, misses_count: int) -> dict[str, Any]:
    width = WIDTHS[endpoint]
    fixed = {"inputs": [[0.25] * width]}
    client.ok("POST", predict_path(endpoint), fixed)  # the miss that fills the entry
    hits = [_timed(client, endpoint, fixed) for _ in range(requests)]
    rng = random.Random(11)
    misses = [_timed(client, endpoint, {"inputs": [[rng.uniform(-2, 2) for _ in range(width)]]})
              for _ in range(misses_count)]
    if not all(cached for _, _, cached in hits) or any(cached for _, _, cached in misses):
        raise SystemExit(f"{endpoint}: identical requests were not all cache hits, or distinct ones were")
    return {"endpoint": endpoint, "hits": requests, "misses": misses_count, "hit": _summary(hits),
            "miss": _summary(misses)}


def _timed(client: Client, endpoint: str, body: dict[str, Any]) -> tuple[float, float, bool]:
    started = time.perf_counter()
    answer = client.ok("POST", predict_path(endpoint), body)
    return answer["latency_ms"], (time.perf_counter() - started) * 1000, answer["cached"]


def _summary(samples: list[tuple[float, float, bool]]) -> dict[str, float]:
    server = sorted(s for s, _, _ in samples)
    client = sorted(c for _, c, _ in samples)
    return {"server_p50_ms": round(statistics.median(server), 3), "server_p99_ms": round(_pct(server, 99), 3),
            "client_p50_ms": round(statistics.median(client), 3)}


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


# --- profiling ---------------------------------------------------------------------------------------


def profile(args: argparse.Namespace, platform_run, platform: Server, client: Client) -> dict[str, Any]:
    """py-spy (GIL holders only, so samples are CPU the Python code spends) on the web workers and the
    endpoint's model worker during one more churn-logreg run at 16 connections."""
    from peers import peer  # see main()

    # One on PATH, else the MLServer peer's (main() creates that venv for --profile).
    endpoint, py_spy = "churn-logreg", shutil.which("py-spy") or str(peer("mlserver").venv / "bin" / "py-spy")
    table = _proc_table()
    masters = [pid for pid in _descendants(table, platform.proc.pid)
               if "gunicorn" in table[pid][2] and "gunicorn" not in table[table[pid][0]][2]]
    targets = {"web": masters[0], "model": min(model_worker_pid(client, endpoint))}
    seconds = int(args.warmup + args.duration + 2)
    spies = [subprocess.Popen([py_spy, "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking",
                               "--rate", "250", "--format", "raw", "--duration", str(seconds),
                               "-o", str(OUT / f"profile-{name}.txt")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, pid in targets.items()]
    time.sleep(1)
    figures = platform_run(endpoint, 16, f"platform {endpoint} under py-spy")
    for spy in spies:
        spy.wait(timeout=60)
    cpu = figures["cpu_ms_per_request"]
    return {"web": summarize_stacks(OUT / "profile-web.txt", cpu.get("web", 0.0), WEB_CATEGORIES),
            "model": summarize_stacks(OUT / "profile-model.txt", cpu.get("model worker", 0.0), MODEL_CATEGORIES)}


# Each sample goes to the first category one of whose markers is in one of its frames, so the order
# matters: the specific costs first, then the layers that contain them.
WEB_CATEGORIES = [
    # The fast lane (inference/fastlane.py), which answers the measured routes.
    ("response through uvicorn (headers, two writes)", ("_respond",)),
    ("admission (headers, host, API-key cache)", ("_admit",)),
    ("throttle lease", ("FastLane._throttle",)),
    ("Prometheus metrics", ("observe_prediction", "observe_error")),
    ("worker round trip (frame JSON, socket)", ("call_worker_async", "WorkerClient.call", "Outbox.flush",
                                                "_Channel.data_received")),
    ("request body parsing", ("loads_strict", "_json_body")),
    ("input checks", ("normalize_inputs",)),
    ("response JSON", ("_Reply.json",)),
    ("rest of the fast lane", ("fastlane.py",)),
    ("uvicorn HTTP parsing", ("HttpToolsProtocol",)),
    # Django and DRF, for requests the fast lane hands on.
    ("throttle: Redis INCR + EXPIRE", ("ClientRateThrottle",)),
    ("authentication (authenticator objects, API key)", ("perform_authentication", "get_authenticators",
                                                          "Request.user", "Request._authenticate")),
    ("prediction cache (Redis)", ("PredictionCache.",)),
    ("request body parsing (DRF)", ("Request.data", "_load_data_and_files")),
    ("content negotiation + rendering (DRF)", ("perform_content_negotiation", "finalize_response",
                                               "rendered_content", "SimpleTemplateResponse")),
    ("rest of the view and serving.predict", ("PredictApi.post", "serving.py")),
    ("rest of DRF dispatch", ("APIView.dispatch",)),
    ("URL resolving", ("resolve_request",)),
    ("Django handler + middleware", ("WSGIHandler.__call__",)),
    ("gunicorn access log", ("Logger.access",)),
    ("gunicorn HTTP parsing + writing", ("gunicorn/http", "ThreadWorker.handle")),
    ("other (event loop, gunicorn, ...)", ("",)),
]
MODEL_CATEGORIES = [
    ("scikit-learn input validation", ("validate_data", "check_array", "_check_feature_names")),
    ("model computation", ("ServedModel.predict",)),
    ("frame JSON decode / encode", ("protocol.py",)),
    ("batcher (queue, gather, split)", ("DynamicBatcher", "batcher.py")),
    ("asyncio loop, sockets, thread hand-off", ("",)),
]
BOILERPLATE = re.compile(r"threading\.py|concurrent/futures|runpy|asyncio/runners|run_forever|run_until_complete|"
                         r"_run_once|gunicorn/(__main__|arbiter|app/)|worker/__main__|process\.py\)|init_process")


def summarize_stacks(path: Path, cpu_ms_per_request: float, categories, top: int = 20) -> dict[str, Any]:
    inclusive: Counter[str] = Counter()
    shares: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";") if not frame.startswith("process ")]
        if not frames or not count.isdigit():
            continue
        total += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
        shares[next(name for name, markers in categories if any(m in f for m in markers for f in frames))] += int(count)
    if not total:
        return {"samples": 0}

    def row(name: str, n: int) -> dict[str, Any]:
        return {"name": name, "share_pct": round(100 * n / total, 1),
                "ms_per_request": round(cpu_ms_per_request * n / total, 3)}

    frames = [(f, n) for f, n in inclusive.most_common() if not BOILERPLATE.search(f)][:top]
    return {"samples": total, "cpu_ms_per_request": cpu_ms_per_request,
            "categories": [row(name, n) for name, n in shares.most_common()],
            "frames": [row(f, n) for f, n in frames]}


# --- report ------------------------------------------------------------------------------------------


def fmt_row(cells: list[Any], widths: list[int]) -> str:
    return "  ".join(str(cell).ljust(width) if i < 2 else str(cell).rjust(width)
                     for i, (cell, width) in enumerate(zip(cells, widths)))


def print_platform(table: Table, connections: list[int]) -> None:
    widths = [13, 5, 8, 8, 8, 10, 10, 12]
    print("\n## The platform (single-row requests, prediction cache off)")
    print(fmt_row(["model", "conns", "req/s", "p50 ms", "p99 ms", "batch/req", "CPU ms/req", "other load"], widths))
    for model in SKLEARN_MODELS:
        for conns in connections:
            r = table[("platform", model, conns)]
            cpu = sum(r["cpu_ms_per_request"].values())
            print(fmt_row([model, conns, f"{r['rps']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                           r.get("batch_per_request") or "-", f"{cpu:.2f}", f"{r['other_load_cores']:.2f} cores"],
                          widths))
    print("batch/req: mean size of the forward pass each request rode. CPU ms/req: all the server's processes.")


def print_same_protocol(table: Table, same_protocol: dict[tuple[str, int], dict[str, Any]]) -> None:
    """The platform's V2 infer route against each peer that speaks V2 (the same body, byte for byte)."""
    v2_peers = sorted({who for (who, _, _) in table if who in V2_PEERS})
    if not v2_peers:
        return
    print("\n## Same protocol: the platform's POST /v2/models/{name}/infer vs the V2 peers' (one FP64 row, JSON)")
    for (model, conns), run in same_protocol.items():
        cells = [(who, table[(who, model, conns)]) for who in v2_peers if (who, model, conns) in table]
        others = "   ".join(f"{who} {other['rps']:.0f} req/s p99 {other['p99_ms']:.1f} "
                           f"(platform {run['rps'] / other['rps']:.2f}x)" for who, other in cells)
        print(f"  {model:<13} c={conns:<3} platform {run['rps']:.0f} req/s p99 {run['p99_ms']:.1f}   {others}")


def print_universal(table: dict, universal: dict[int, dict[str, Any]]) -> None:
    print("\n## Universal route: POST /api/v1/predict {model, inputs} (its production alias resolved by the web "
          "process) vs POST /api/v1/predict/{endpoint}, churn-logreg")
    for conns, run in universal.items():
        direct = table[("platform", "churn-logreg", conns)]
        print(f"  c={conns:<3} {versus(run, direct, lambda r: sum(r['cpu_ms_per_request'].values()))} "
              f"({run['rps'] / direct['rps']:.2f}x)")


def versus(run: dict[str, Any], other: dict[str, Any], cpu: Any) -> str:
    """'A vs B' for req/s, p99 and the CPU ms per request that `cpu` picks out of a run."""
    return (f"{run['rps']:.0f} req/s vs {other['rps']:.0f}, p99 {run['p99_ms']:.1f} vs {other['p99_ms']:.1f} ms, "
            f"{cpu(run):.2f} vs {cpu(other):.2f} CPU ms/request")


def print_batching(table: dict, batching: dict[tuple[str, int], dict[str, Any]],
                   torch_all: dict[int, dict[str, Any]]) -> None:
    print("\n## Dynamic batching on (32 rows, no added wait) vs off (1 row), platform, cache off")
    widths = [13, 5, 10, 10, 10, 10, 10, 10, 8, 14]
    print(fmt_row(["model", "conns", "on req/s", "on p99", "on batch", "off req/s", "off p99", "off batch",
                   "on/off", "model CPU off/on"], widths))
    for (model, conns), off in batching.items():
        on = table[("platform", model, conns)]
        model_cpu = [run["cpu_ms_per_request"].get("model worker", 0) for run in (off, on)]
        print(fmt_row([model, conns, f"{on['rps']:.0f}", f"{on['p99_ms']:.1f}", on.get("batch_per_request"),
                       f"{off['rps']:.0f}", f"{off['p99_ms']:.1f}", off.get("batch_per_request"),
                       f"{on['rps'] / off['rps']:.2f}x", f"{model_cpu[0] / max(model_cpu[1], 1e-9):.1f}x"], widths))
    print("model CPU off/on: the model worker's CPU ms per request without batching over that with it (what one "
          "forward pass per batch saves the model; req/s is also bounded by the web tier's share of the cores)")
    for conns, run in torch_all.items():
        default = table[("platform", "demand-mlp", conns)]
        print(f"  demand-mlp c={conns}, batching on, the default torch_threads (1) vs torch's own default "
              f"({ALL_CORES}, a thread per core): "
              f"{versus(default, run, lambda r: r['cpu_ms_per_request'].get('model worker', 0))} (model worker)")


def print_cache(cache: list[dict[str, Any]], cache_runs: dict[str, dict[str, Any]]) -> None:
    print(f"\n## Prediction cache: server time (`latency_ms`) of {cache[0]['hits']} identical (hits) and "
          f"{cache[0]['misses']} distinct (misses) sequential requests on one connection")
    for entry in cache:
        hit, miss = entry["hit"], entry["miss"]
        print(f"  {entry['endpoint']:<13} hit p50 {hit['server_p50_ms']:.3f} ms (p99 {hit['server_p99_ms']:.3f}, "
              f"round trip {hit['client_p50_ms']:.2f})   miss p50 {miss['server_p50_ms']:.3f} ms "
              f"(p99 {miss['server_p99_ms']:.3f}, round trip {miss['client_p50_ms']:.2f})   "
              f"miss/hit {miss['server_p50_ms'] / hit['server_p50_ms']:.1f}x")
    for label, r in cache_runs.items():
        print(f"  wrk {label}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")


def print_cpu(results: list[dict[str, Any]]) -> None:
    print("\n## CPU ms per request by process group (from /proc; 2 cores = 2000 ms of CPU per second)")
    for r in results:
        groups = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(r["cpu_ms_per_request"].items(),
                                                                      key=lambda kv: -kv[1]) if ms)
        print(f"  {r['label']:<34} c={r['connections']:<3} {groups}")


def targets(table: Table, cache: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Issue 20's targets, each from this run's own figures (a target whose figures this run lacks is left
    out, never passed)."""
    from bench_peers import best_peer  # bench_peers imports this module: imported when called, not at load

    checks = []
    for model in SKLEARN_MODELS:
        for conns in (16, 64):
            mine, best = table.get(("platform", model, conns)), best_peer(table, model, conns, besides="platform")
            if mine and best:
                name, other = best
                checks.append((f"{model} @{conns}: >= 2x the best peer's req/s ({name}) with a lower p99",
                               mine["rps"] >= 2 * other["rps"] and mine["p99_ms"] < other["p99_ms"],
                               f"{mine['rps'] / other['rps']:.2f}x req/s, p99 {mine['p99_ms']:.1f} vs "
                               f"{other['p99_ms']:.1f} ms"))
    mine = table.get(("platform", "churn-logreg", 64))
    local, http = table.get(("floor-predict", "churn-logreg", 64)), table.get(("floor-http", "churn-logreg", 64))
    if mine and local:
        checks.append(("churn-logreg @64: faster than the in-process floor", mine["rps"] > local["rps"],
                       f"{mine['rps']:.0f} vs {local['rps']:.0f} req/s ({mine['rps'] / local['rps']:.2f}x)"))
    if mine and http:
        checks.append(("churn-logreg @64: >= 25% of the HTTP floor", mine["rps"] >= 0.25 * http["rps"],
                       f"{mine['rps'] / http['rps']:.1%} of {http['rps']:.0f} req/s"))
    for conns in (16, 64):
        mine = table.get(("platform", "churn-logreg", conns))
        if mine:
            web = mine["cpu_ms_per_request"].get("web", 0.0)
            checks.append((f"churn-logreg @{conns}: web tier CPU per prediction <= 0.08 ms", web <= 0.08,
                           f"{web:.3f} ms"))
    for entry in cache:
        checks.append((f"cache hit p50 server time < 0.5 ms ({entry['endpoint']})",
                       entry["hit"]["server_p50_ms"] < 0.5, f"{entry['hit']['server_p50_ms']:.3f} ms"))
    print("\n## The issue's targets (issue 20)")
    for name, passed, detail in checks:
        print(f"  [{'PASS' if passed else 'MISS'}] {name}: {detail}")
    return checks


def print_profile(profiles: dict[str, Any]) -> None:
    for name, data in profiles.items():
        if not data.get("samples"):
            print(f"\n## Profile of the {name} process: no samples (py-spy needs ptrace rights)")
            continue
        print(f"\n## Where the {name} process(es) spend CPU: churn-logreg @16 under py-spy, "
              f"{data['cpu_ms_per_request']:.2f} CPU ms/request (/proc), split by GIL-held samples "
              f"({data['samples']}; raw stacks: bench/out/profile-{name}.txt)")
        for row in data["categories"]:
            print(f"  {row['share_pct']:5.1f}%  {row['ms_per_request']:6.3f} ms  {row['name']}")
        print("  top frames, inclusive:")
        for row in data["frames"]:
            print(f"  {row['share_pct']:5.1f}%  {row['ms_per_request']:6.3f} ms  {row['name'][:110]}")


def machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "python": sys.version.split()[0]}


# --- main --------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before each measured run")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated wrk connection counts")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
    parser.add_argument("--cache-requests", type=int, default=1000, help="identical requests (cache hits)")
    parser.add_argument("--cache-misses", type=int, default=300, help="distinct requests (cache misses)")
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the project's venv python")
    parser.add_argument("--var-dir", type=Path, default=OUT / "var", help="the platform's VAR_DIR")
    parser.add_argument("--ref", help="serve this git commit (a clean `git archive` export) instead of the working "
                        "tree; the project's .venv runs it either way")
    parser.add_argument("--fresh", action="store_true", help="wipe --var-dir first (retrains the demo models)")
    parser.add_argument("--profile", action="store_true", help="py-spy the web and model processes once more")
    parser.add_argument("--peers", default="floor-http,floor-predict,kserve,pytriton,mlserver",
                        help="comma-separated peers measured after the platform, one at a time (bench/peers; "
                        "'none' for the platform alone)")
    parser.add_argument("--peer-connections", default="16,64", help="the connection counts the peers are measured at")
    parser.add_argument("--export-sklearn", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.peers = [] if args.peers in ("", "none") else args.peers.split(",")
    return args


def main() -> None:
    args = parse_args()
    # A shell that starts this in the background hands it SIGINT ignored, and children would inherit that:
    # serve.py would then never see the SIGINT that stops it. A handler resets to the default on exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.export_sklearn:
        export_sklearn(args.export_sklearn)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk (Debian), then run this again")
    if not Path(args.python).exists():
        raise SystemExit(f"{args.python} is missing: run `make test` or `make serve` once to create .venv")
    OUT.mkdir(parents=True, exist_ok=True)
    from peers import peer  # imports this module: imported when called, not at load

    # Every venv before any measurement: pip never runs under wrk. The MLServer venv also brings py-spy.
    wanted = [*args.peers, *(["mlserver"] if args.profile and "mlserver" not in args.peers else [])]
    args.peer_venvs = {name: peer(name).ensure_venv(args.python) for name in wanted}
    args.tree = source_tree(args.ref)
    started, servers = time.monotonic(), []
    try:
        report = benchmark(args, servers)
    finally:
        for server in reversed(servers):
            server.stop()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = OUT / f"serving-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    log(f"done in {time.monotonic() - started:.0f} s; figures in {path.relative_to(ROOT)}")


def benchmark(args: argparse.Namespace, servers: list[Server]) -> dict[str, Any]:
    connections = [int(c) for c in args.connections.split(",")]
    info = machine()
    log(f"machine: {info['nproc']} x {info['cpu']}, load average {' '.join(info['loadavg'])}")
    platform, port, env = start_platform(args)
    servers.append(platform)
    key = create_key(args, env)
    client = Client(port, key)
    wait_for_endpoints(client, platform)
    expected = export_models(args, env, PEER_MODELS)
    reset_deployments(client, platform)
    set_cache(client, False)
    check_answers(expected, client)

    runner = Runner(args)
    model_pids: set[int] = set()
    platform_meter = CpuMeter(platform.proc.pid, lambda cmd, pid: platform_group(cmd, pid, model_pids))
    base = f"http://127.0.0.1:{port}"

    def platform_run(endpoint: str, conns: int, label: str = "", *, path: str = "", mode: str = "platform",
                     **options) -> dict[str, Any]:
        model_pids.clear()
        model_pids.update(model_worker_pid(client, endpoint))
        return runner.run(label or f"platform {endpoint}", base + (path or predict_path(endpoint)),
                          meter=platform_meter, metrics=batch_counters(client, endpoint), mode=mode,
                          width=WIDTHS[endpoint], connections=conns, key=key, **options)

    table: Table = {}
    for model in SKLEARN_MODELS:
        for conns in connections:
            table[("platform", model, conns)] = platform_run(model, conns)
    batch_conns = [c for c in (16, 64) if c in connections] or [max(connections)]
    # The same protocol on both sides: the platform's V2 infer route (the fast lane's other route).
    same_protocol = {(model, conns): platform_run(model, conns, f"platform V2 {model}",
                                                  path=f"/v2/models/{model}/infer", mode="v2-platform")
                     for model in SKLEARN_MODELS for conns in batch_conns}
    # The universal route: the model by name and its production alias, looked up in the database per request.
    universal = {conns: platform_run("churn-logreg", conns, "platform universal churn-logreg",
                                     path="/api/v1/predict", mode="universal", model="churn-logreg")
                 for conns in batch_conns}
    for conns in batch_conns:
        table[("platform", "demand-mlp", conns)] = platform_run("demand-mlp", conns)
    batching = {}
    for model in BATCHING_MODELS:
        set_batching(client, model, BATCHING_OFF)
        time.sleep(KNOB_SETTLE_S)
        try:
            for conns in batch_conns:
                batching[(model, conns)] = platform_run(model, conns, f"platform {model} batching off")
        finally:
            set_batching(client, model, BATCHING_ON)

    set_cache(client, True)
    cache = [cache_latencies(client, endpoint, args.cache_requests, args.cache_misses) for endpoint in SKLEARN_MODELS]
    cache_runs = {"churn-logreg c=16, cache on, identical requests (hits)":
                  platform_run("churn-logreg", 16, "platform churn-logreg cache hits", vary=False),
                  "churn-logreg c=16, cache on, distinct requests (misses + writes)":
                  platform_run("churn-logreg", 16, "platform churn-logreg cache misses")}
    set_cache(client, False)
    time.sleep(KNOB_SETTLE_S)
    profiles = profile(args, platform_run, platform, client) if args.profile else {}
    # Last, because going back to the default thread count restarts the worker.
    set_batching(client, "demand-mlp", {"torch_threads": ALL_CORES})
    time.sleep(KNOB_SETTLE_S)
    try:
        torch_all = {conns: platform_run("demand-mlp", conns, f"platform demand-mlp torch_threads={ALL_CORES}")
                     for conns in batch_conns}
    finally:
        set_batching(client, "demand-mlp", {"torch_threads": None})
    # One server at a time: the platform is stopped before the first peer starts.
    platform.stop()
    failures = measure_peers(args, runner, expected, table)

    print(f"\n# Serving benchmark — {info['nproc']} CPUs ({info['cpu']}), load average before "
          f"{' '.join(info['loadavg'])}, WEB_WORKERS={args.web_workers}, wrk {args.duration:g} s after "
          f"{args.warmup:g} s warm-up, 2 threads")
    print_platform(table, connections)
    compared = print_peers(args, table)
    print_same_protocol(table, same_protocol)
    print_universal(table, universal)
    print_batching(table, batching, torch_all)
    print_cache(cache, cache_runs)
    print_cpu(runner.results)
    checks = targets(table, cache) + batching_targets(table, batching)
    print_profile(profiles)
    noisy = [r for r in runner.results if r["other_load_cores"] > 0.2]
    if noisy:
        print(f"\nWARNING: {len(noisy)} runs shared the machine with other load (up to "
              f"{max(r['other_load_cores'] for r in noisy):.2f} cores busy outside the benchmark): figures are low")
    return {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "runs": runner.results,
            "cache": cache, "targets": [{"target": n, "passed": p, "detail": d} for n, p, d in checks],
            "profiles": profiles, "versus": compared, "peer_failures": failures,
            "peers": {name: {**venv, "title": titles(args).get(name)} for name, venv in args.peer_venvs.items()}}


def measure_peers(args: argparse.Namespace, runner: Runner, expected: dict[str, Any], table: Table) -> dict[str, str]:
    """Each peer in turn on the models the platform served (exported from its registry), its answers
    checked first; one that cannot start or answers wrong is reported and the others still run."""
    from bench_peers import measure_peer  # see main()
    from peers import peer

    connections = [int(c) for c in args.peer_connections.split(",")]
    failures = {}
    for name in args.peers:
        try:
            measure_peer(peer(name), runner, PEER_MODELS, expected, list(SKLEARN_MODELS), connections, table)
        except SystemExit as exc:
            failures[name] = str(exc)
            log(f"{name} FAILED: {exc}")
    return failures


def titles(args: argparse.Namespace) -> dict[str, str]:
    from peers import peer  # see main()

    return {name: peer(name).title.format(version=venv["version"]) for name, venv in args.peer_venvs.items()
            if name in args.peers}


def print_peers(args: argparse.Namespace, table: Table) -> list[dict[str, Any]]:
    """Every peer's figures, then the platform against the best peer per cell and its share of the floors."""
    if not args.peers:
        return []
    from bench_peers import print_table, print_versus  # see main()

    print_table({cell: figures for cell, figures in table.items() if cell[0] != "platform"}, titles(args))
    connections = [int(c) for c in args.peer_connections.split(",")]
    return print_versus("platform", table, list(SKLEARN_MODELS), connections)


def batching_targets(table: Table, batching: dict[tuple[str, int], dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """The batcher's own bar (issue 13): a batched RandomForest at 16 and 64 connections >= 10x unbatched."""
    checks = []
    for conns in (16, 64):
        on, off = table.get(("platform", "fraud-forest", conns)), batching.get(("fraud-forest", conns))
        if on and off:
            checks.append((f"fraud-forest @{conns}: batching >= 10x unbatched", on["rps"] >= 10 * off["rps"],
                           f"{on['rps'] / off['rps']:.2f}x"))
    for name, passed, detail in checks:
        print(f"  [{'PASS' if passed else 'MISS'}] {name}: {detail}")
    return checks


if __name__ == "__main__":
    main()
