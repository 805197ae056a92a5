"""Connections to another host's model server gateway (contract/gateway.py): connect, prove the secret, check
the server's proof, name the endpoint replica; afterwards the connection is a worker channel like a local one.

Every failure before the hello is answered raises NotDelivered (nothing was sent, another instance may take
the request) after telling `on_unreachable`, so the caller stops using that instance for a while.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from inference.runtime.contract.gateway import (
    DIGEST_BYTES,
    HANDSHAKE_TIMEOUT_S,
    MAGIC,
    NONCE_BYTES,
    GatewayAuth,
    RemoteTarget,
    client_proof,
    new_nonce,
    proof_matches,
    server_proof,
)
from inference.runtime.contract.protocol import HEADER, MAX_FRAME_BYTES, FrameError, decode, encode, recv_exactly
from inference.runtime.web.client import DeadlineExceeded, NotDelivered, time_left

# A host that does not answer at all (powered off, partitioned) must not hold a request for its whole deadline.
CONNECT_TIMEOUT_S = 1.0

Unreachable = Callable[[str], None]


def connect_blocking(target: RemoteTarget, auth: GatewayAuth | None, deadline: float,
                     on_unreachable: Unreachable) -> socket.socket:
    if auth is None:
        raise NotDelivered("no MODEL_SERVER_SECRET: other hosts' model servers cannot be reached")
    budget = min(time_left(deadline), HANDSHAKE_TIMEOUT_S)
    try:
        raw = socket.create_connection((target.host, target.port), timeout=min(budget, CONNECT_TIMEOUT_S))
    except OSError:
        on_unreachable(target.instance_address)
        raise NotDelivered("the model server instance does not answer") from None
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(budget)
        sock = _wrap(raw, auth) if target.tls else raw
        _handshake_blocking(sock, target, auth.secret)
    except (OSError, FrameError, ValueError, _Refused) as exc:
        raw.close()
        if not isinstance(exc, _Refused):
            on_unreachable(target.instance_address)
        if isinstance(exc, TimeoutError) and time.time() >= deadline:
            raise DeadlineExceeded("the model server instance did not answer before the deadline") from None
        raise NotDelivered("the model server instance refused the connection") from None
    return sock


class _Refused(Exception):
    """The gateway is up but does not serve this endpoint (any more): a routing delay, not a dead host."""


def _wrap(raw: socket.socket, auth: GatewayAuth) -> socket.socket:
    if auth.tls is None:
        raise ValueError("this instance uses TLS: set MODEL_SERVER_TLS_CA (or the system's CAs) here")
    return auth.tls.wrap_socket(raw)


def _handshake_blocking(sock: socket.socket, target: RemoteTarget, secret: bytes) -> None:
    greeting = recv_exactly(sock, len(MAGIC) + NONCE_BYTES)
    if not greeting.startswith(MAGIC):
        raise ValueError("not a model server gateway")
    server_nonce, nonce = greeting[len(MAGIC):], new_nonce()
    sock.sendall(nonce + client_proof(secret, server_nonce, nonce))
    if not proof_matches(server_proof(secret, server_nonce, nonce), recv_exactly(sock, DIGEST_BYTES)):
        raise ValueError("the gateway does not hold the secret")
    sock.sendall(encode({"endpoint": target.endpoint, "replica": target.replica}))
    (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise FrameError("answer too large")
    if decode(recv_exactly(sock, size)).get("ok") is not True:
        raise _Refused()


async def connect_async(target: RemoteTarget, auth: GatewayAuth | None, on_unreachable: Unreachable,
                        protocol_factory: Callable[[], Any]) -> Any:
    """The protocol `protocol_factory` made, attached to an authenticated connection."""
    if auth is None:
        raise NotDelivered("no MODEL_SERVER_SECRET: other hosts' model servers cannot be reached")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port, ssl=auth.tls if target.tls else None), CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ssl.SSLError):
        on_unreachable(target.instance_address)
        raise NotDelivered("the model server instance does not answer") from None
    try:
        await asyncio.wait_for(_handshake_async(reader, writer, target, auth.secret), HANDSHAKE_TIMEOUT_S)
    except (OSError, TimeoutError, FrameError, ValueError, asyncio.IncompleteReadError, _Refused) as exc:
        writer.close()
        if not isinstance(exc, _Refused):
            on_unreachable(target.instance_address)
        raise NotDelivered("the model server instance refused the connection") from None
    # The handshake is request/answer, so nothing is left in the reader's buffer: hand the transport over.
    transport = writer.transport
    protocol = protocol_factory()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    # A StreamWriter closes its transport when collected: it must live as long as the connection.
    protocol.stream_writer = writer
    return protocol


async def _handshake_async(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: RemoteTarget,
                           secret: bytes) -> None:
    greeting = await reader.readexactly(len(MAGIC) + NONCE_BYTES)
    if not greeting.startswith(MAGIC):
        raise ValueError("not a model server gateway")
    server_nonce, nonce = greeting[len(MAGIC):], new_nonce()
    writer.write(nonce + client_proof(secret, server_nonce, nonce))
    if not proof_matches(server_proof(secret, server_nonce, nonce), await reader.readexactly(DIGEST_BYTES)):
        raise ValueError("the gateway does not hold the secret")
    writer.write(encode({"endpoint": target.endpoint, "replica": target.replica}))
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise FrameError("answer too large")
    if decode(await reader.readexactly(size)).get("ok") is not True:
        raise _Refused()
