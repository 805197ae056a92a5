"""PyTriton (`nvidia-pytriton`; servers/pytriton_app.py): Triton's C++ HTTP front end, scheduler and
dynamic batcher, the models as Python callables in the PyTriton process (Triton's Python backend stub
hands each batch over shared memory). On CPU, x86_64, Python 3.8-3.13: the wheel bundles tritonserver
and a backend stub per Python version."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .base import SERVERS, Peer, V2Protocol, free_ports


class PyTriton(V2Protocol, Peer):
    """Triton's documented way to throughput: the dynamic batcher (max batch 32, the same as the
    platform's and MLServer's; max_queue_delay_microseconds 0, Triton's default, batches whatever is queued
    while the instances are busy) and 2 model instances (a list of 2 callables), V2 HTTP."""

    name = "pytriton"
    title = "PyTriton {version} (Triton core, Python model), dynamic batching 32, 2 instances, V2"
    venv_name = "pytriton"
    packages = ("nvidia-pytriton",)
    version_of = "nvidia-pytriton"
    instances = 2
    max_batch = 32
    input_name = "input"
    output_name = "probabilities"

    def command(self, port: int, models: Path) -> list[str]:
        (metrics,) = free_ports(1)
        return [str(self.python), str(SERVERS / "pytriton_app.py"), "--models-dir", str(models),
                "--http-port", str(port), "--metrics-port", str(metrics), "--instances", str(self.instances),
                "--max-batch", str(self.max_batch)]

    def env(self, models: Path) -> dict[str, str]:
        """Triton's Python backend stub is linked against libpython3.11.so.1.0 and, without a path, the
        loader finds the system's (Debian 12: 3.11.2), while the venv's python hands it its own standard
        library (pyenv's 3.11.7 here): the model instances then die at start with "'_thread.RLock' object
        has no attribute '_recursion_count'". The venv's own libpython comes first on the path."""
        env = super().env(models)
        code = "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"
        libdir = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True,
                                check=True).stdout.strip()
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libdir, env.get("LD_LIBRARY_PATH")]))
        return env

    def cpu_group(self, cmd: str) -> str:
        if "triton_python_backend_stub" in cmd:  # first: the stub's path holds "tritonserver" too
            return "python backend stubs"
        if "tritonserver" in cmd:
            return "tritonserver"
        return "pytriton (Python models)"
