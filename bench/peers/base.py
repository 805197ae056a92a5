"""What every peer server offers the benchmark: its own virtualenv, a start that returns a Server handle
once the models answer, the body of one single-row request in its protocol, and a check of its answers
against the model's own predict_proba.

The process, HTTP and CPU helpers are bench_serving.py's, imported from here only: when that script is
split, this import is the one line to change.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from bench_serving import BENCH, OUT, ROOT, Client, Server, log, project_facts, wait_until

PEER_VENVS = BENCH / ".peers"
SERVERS = Path(__file__).resolve().parent / "servers"  # the scripts each peer's own venv runs
TOLERANCE = 1e-9  # every peer computes in float64, as the model does
READY_TIMEOUT_S = 240.0  # generous: the slowest, MLServer, is ready in ~7 s here


VenvInfo = dict[str, Any]


class Peer:
    """One peer at its best documented configuration. Subclasses set the class attributes and `command`;
    `template`, `path` and `probabilities` describe its protocol."""

    name: ClassVar[str]  # the key on the command line and in the JSON
    title: ClassVar[str]  # what the tables print, versions filled in from the venv
    venv_name: ClassVar[str]  # bench/.peers/<venv_name>-venv
    packages: ClassVar[tuple[str, ...]]
    version_of: ClassVar[str]  # the distribution whose version the tables print

    @property
    def venv(self) -> Path:
        return PEER_VENVS / f"{self.venv_name}-venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    # --- the virtualenv --------------------------------------------------------------------------

    def ensure_venv(self, project_python: str) -> VenvInfo:
        """Creates the venv on first use (pip, the peer's packages and the project's scikit-learn, since a
        joblib file loads only into the scikit-learn that wrote it); reinstalls when the package list or
        the project's scikit-learn changed. Returns what it cost: install seconds, size, versions."""
        facts = project_facts(project_python)
        wanted = [*self.packages, f"scikit-learn=={facts['sklearn']}"]
        marker = self.venv / "bench-packages.json"
        recorded = json.loads(marker.read_text()) if marker.exists() else {}
        if recorded.get("packages") != wanted:
            recorded = {"packages": wanted, "install_s": self._install(facts["base_python"], wanted)}
            marker.write_text(json.dumps(recorded))
        return {"venv": str(self.venv.relative_to(ROOT)), "install_s": recorded["install_s"],
                "size_mb": _size_mb(self.venv), "version": self.version()}

    def _install(self, base_python: str, packages: list[str]) -> float:
        started = time.monotonic()
        if not self.python.exists():
            log(f"creating {self.venv.relative_to(ROOT)}")
            subprocess.run([base_python, "-m", "venv", str(self.venv)], check=True)
        log(f"{self.name}: pip install {' '.join(packages)} (first run only)")
        result = subprocess.run([str(self.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                 *packages], capture_output=True, text=True, check=False)
        if result.returncode:
            raise SystemExit(f"{self.name}: pip install failed ({result.returncode}):\n{result.stderr[-3000:]}")
        seconds = round(time.monotonic() - started, 1)
        log(f"{self.name}: installed in {seconds:.0f} s")
        return seconds

    def version(self) -> str:
        code = f"from importlib.metadata import version; print(version({self.version_of!r}))"
        return subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()

    # --- the server ------------------------------------------------------------------------------

    def command(self, port: int, models: Path) -> list[str]:
        raise NotImplementedError

    def env(self, models: Path) -> dict[str, str]:
        """The server's environment: ours, less the project venv's marker (each peer runs its own), and no
        warnings printed. The demo models were fitted on arrays and named afterwards (demo/training/tabular.py
        says why), so scikit-learn warns on every plain array; and FastAPI 0.165 warns on every response that
        KServe sends. Filters set in code would not reach the worker processes that KServe and uvicorn
        spawn; the environment does. A warning written to the log per request is not serving."""
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env["PYTHONWARNINGS"] = "ignore"
        return env

    def start(self, port: int, models: Path, names: list[str]) -> Server:
        """Starts the server in a session of its own and returns once every model answers its readiness
        probe; Server.stop() ends it (SIGINT to the launcher, then its whole process group)."""
        server = Server(self.name, self.command(port, models), env=self.env(models), cwd=models,
                        log_path=OUT / f"peer-{self.name}.log")
        log(f"{self.name}: port {port} (log: {server.log_path.relative_to(ROOT)})")
        probe, started = Client(port), time.monotonic()
        try:
            for model in names:
                path = self.ready_path(model)
                wait_until(f"{self.name} {model}", lambda path=path: probe.call("GET", path)[0] == 200, server,
                           READY_TIMEOUT_S)
        except BaseException:
            server.stop()
            raise
        log(f"{self.name}: ready after {time.monotonic() - started:.1f} s")
        return server

    def ready_path(self, model: str) -> str:
        return f"/v2/models/{model}/ready"

    def cpu_group(self, cmd: str) -> str:
        """The process group a process of this server's tree counts its CPU under."""
        return self.name

    # --- the protocol ----------------------------------------------------------------------------

    def path(self, model: str) -> str:
        raise NotImplementedError

    def template(self, model: str, width: int) -> str:
        """The JSON body of one single-row request, "{row}" standing for the row (a JSON array): the same
        text wrk sends (bench/serving_load.lua, template mode) and the answer check posts."""
        raise NotImplementedError

    def body(self, model: str, row: list[float]) -> Any:
        return json.loads(self.template(model, len(row)).replace("{row}", json.dumps(row)))

    def probabilities(self, answer: Any) -> list[float]:
        """The class probabilities of the one row in an answer."""
        raise NotImplementedError

    def check(self, client: Client, expected: dict[str, Any]) -> None:
        """Every model's answers must be the model's own predict_proba before any figure counts."""
        for model, want in expected.items():
            for index, row in enumerate(want["rows"]):
                answer = client.ok("POST", self.path(model), self.body(model, row))
                got = self.probabilities(answer)
                if len(got) != len(want["proba"][index]) or any(
                        abs(a - b) > TOLERANCE for a, b in zip(got, want["proba"][index])):
                    raise SystemExit(f"{self.name} answered {got} for {model} row {index}; "
                                     f"the model says {want['proba'][index]}")


class V2Protocol:
    """The Open Inference Protocol (KServe V2) over JSON: one FP64 tensor of shape [1, n] named
    `input_name`; with `output_name`, asking for that output only."""

    input_name: ClassVar[str] = "input-0"
    output_name: ClassVar[str | None] = None

    def path(self, model: str) -> str:
        return f"/v2/models/{model}/infer"

    def template(self, model: str, width: int) -> str:
        outputs = f',"outputs":[{{"name":"{self.output_name}"}}]' if self.output_name else ""
        return ('{"inputs":[{"name":"' + self.input_name + '","shape":[1,' + str(width) +
                '],"datatype":"FP64","data":{row}}]' + outputs + "}")

    def probabilities(self, answer: Any) -> list[float]:
        outputs = {output["name"]: output["data"] for output in answer["outputs"]}
        return outputs[self.output_name] if self.output_name else answer["outputs"][0]["data"]


def free_ports(count: int) -> list[int]:
    """Distinct free ports, held open together so that the kernel cannot hand out one twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _size_mb(folder: Path) -> float:
    total = sum(entry.stat().st_size for entry in folder.rglob("*") if entry.is_file() and not entry.is_symlink())
    return round(total / 2**20, 1)
