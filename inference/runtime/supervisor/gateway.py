"""A model server's TCP listener for other hosts (MODEL_SERVER_LISTEN): authenticate, then relay bytes.

Each connection first passes the handshake of contract/gateway.py: until the client has proved it holds the
secret, nothing it sends is parsed, and a wrong proof closes the connection. Then the client names an
endpoint and a replica, and the connection is joined to that replica's local worker socket: the frames pass
through unchanged (JSON, checked by the worker as any other), so remote calls have the local calls' contract.

It runs an asyncio loop in a thread of the model server: relaying is I/O only, and the model server's own
loop stays synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from inference.runtime.contract.gateway import (
    DIGEST_BYTES,
    HANDSHAKE_TIMEOUT_S,
    HELLO_MAX_BYTES,
    MAGIC,
    NONCE_BYTES,
    GatewayAuth,
    client_proof,
    new_nonce,
    proof_matches,
    server_proof,
)
from inference.runtime.contract.protocol import HEADER, FrameError, decode, encode

logger = logging.getLogger(__name__)
RELAY_CHUNK = 256 * 1024

# The ready worker sockets of an endpoint on this host (empty when it serves none); must be thread-safe.
SocketLookup = Callable[[str], Sequence[str]]


class Gateway:
    def __init__(self, host: str, port: int, auth: GatewayAuth, lookup: SocketLookup) -> None:
        self.host, self.port, self.auth, self.lookup = host, port, auth, lookup
        self.refused = 0  # connections closed for a missing or wrong proof (tests and metrics read it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Gateway:
        """Binds before returning: a port already taken fails the model server's start, not later."""
        started: dict[str, Any] = {}
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started, ready), name="gateway", daemon=True)
        self._thread.start()
        ready.wait()
        if "error" in started:
            raise started["error"]
        return self

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, started: dict[str, Any], ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port, ssl=self.auth.tls,
                                     ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if self.auth.tls else None))
        except OSError as exc:
            started["error"] = exc
            ready.set()
            loop.close()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            # Connections still relaying end with the loop; cancelled, rather than destroyed while pending.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target = await asyncio.wait_for(self._handshake(reader, writer), HANDSHAKE_TIMEOUT_S)
            if target is not None:
                await self._relay(reader, writer, target)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, FrameError, ValueError):
            pass  # a client that hung up, stalled or garbled its hello gets nothing
        except asyncio.CancelledError:
            pass  # the gateway closing: the connection ends with it
        finally:
            with suppress(Exception):
                writer.close()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str | None:
        """The worker socket this connection is for, or None after refusing it."""
        nonce = new_nonce()
        writer.write(MAGIC + nonce)
        await writer.drain()
        answer = await reader.readexactly(NONCE_BYTES + DIGEST_BYTES)
        client_nonce, proof = answer[:NONCE_BYTES], answer[NONCE_BYTES:]
        if not proof_matches(client_proof(self.auth.secret, nonce, client_nonce), proof):
            self.refused += 1
            logger.warning("gateway: refused a connection from %s (wrong secret)", _peer(writer))
            return None
        writer.write(server_proof(self.auth.secret, nonce, client_nonce))
        (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        if size > HELLO_MAX_BYTES:
            raise FrameError("hello too large")
        hello = decode(await reader.readexactly(size))
        endpoint, replica = hello.get("endpoint"), hello.get("replica")
        sockets = list(self.lookup(endpoint)) if isinstance(endpoint, str) else []
        if not sockets or not isinstance(replica, int) or replica < 0:
            writer.write(encode({"ok": False, "error": {"code": "not_served", "message": "not served here"}}))
            await writer.drain()
            return None
        writer.write(encode({"ok": True}))
        return sockets[replica % len(sockets)]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> None:
        try:
            worker_reader, worker_writer = await asyncio.open_unix_connection(path)
        except OSError:
            return  # the replica went away since the lookup: the client sees the connection close
        try:
            await asyncio.gather(_pump(reader, worker_writer), _pump(worker_reader, writer))
        finally:
            with suppress(Exception):
                worker_writer.close()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(RELAY_CHUNK):
            sink.write(chunk)
            await sink.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        # One side gone ends the pair: closing the other makes its pump finish too.
        with suppress(Exception):
            sink.close()


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"
