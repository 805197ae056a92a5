"""The handshake in front of a model server's TCP gateway (runtime/supervisor/gateway.py), which other hosts'
web and jobs tiers reach its workers through.

Both sides prove they hold MODEL_SERVER_SECRET without sending it, each over the other's fresh nonce, so a
recorded handshake cannot be replayed and a server without the secret learns nothing a client sends:

  server -> client   MAGIC + server nonce (32 bytes)
  client -> server   client nonce (32) + HMAC-SHA256(secret, "client" + server nonce + client nonce)
  server -> client   HMAC-SHA256(secret, "server" + client nonce + server nonce)
  client -> server   one frame (protocol.py framing, at most HELLO_MAX_BYTES): {"endpoint": str, "replica": int}
  server -> client   one frame: {"ok": true} or {"ok": false, "error": {"code", "message"}}

Until the client's proof checks out the server reads exactly 64 bytes and parses nothing; a wrong proof closes
the connection. After the hello, the connection carries the worker channel's frames (JSON, never pickle)
unchanged to one worker replica of the named endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import ssl
from dataclasses import dataclass
from functools import lru_cache

MAGIC = b"SPGW/1\r\n"
NONCE_BYTES = 32
DIGEST_BYTES = 32
HELLO_MAX_BYTES = 4096
HANDSHAKE_TIMEOUT_S = 5.0
REMOTE_SCHEMES = ("tcp://", "tls://")


class HandshakeError(Exception):
    """The peer does not hold the secret, or does not speak the gateway's handshake."""


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def client_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, b"client" + server_nonce + client_nonce, hashlib.sha256).digest()


def server_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, b"server" + client_nonce + server_nonce, hashlib.sha256).digest()


def proof_matches(expected: bytes, given: bytes) -> bool:
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    """Where a remote address points: an instance's gateway, and the endpoint replica behind it."""

    host: str
    port: int
    endpoint: str
    replica: int
    tls: bool = False

    @property
    def instance_address(self) -> str:
        return f"{self.host}:{self.port}"


def remote_address(instance_address: str, endpoint: str, replica: int, *, tls: bool = False) -> str:
    """The string the worker clients take in place of a socket path for a replica on another host."""
    return f"{REMOTE_SCHEMES[tls]}{instance_address}/{endpoint}/{replica}"


def is_remote(address: str) -> bool:
    return address.startswith(REMOTE_SCHEMES)


@lru_cache(maxsize=4096)
def parse_remote(address: str) -> RemoteTarget:
    """Raises ValueError for an address that is not tcp://host:port/endpoint/replica (or tls://...)."""
    tls = address.startswith(REMOTE_SCHEMES[1])
    rest = address[len(REMOTE_SCHEMES[tls]):]
    hostport, endpoint, replica = rest.rsplit("/", 2)
    host, port = split_host_port(hostport)
    return RemoteTarget(host, port, endpoint, int(replica), tls)


def split_host_port(value: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class GatewayAuth:
    """What a process needs to connect to other instances' gateways (or to run its own)."""

    secret: bytes
    tls: ssl.SSLContext | None = None


def server_tls(cert: str, key: str, ca: str) -> ssl.SSLContext | None:
    """TLS for a gateway when a certificate is given; with a CA, clients must show a certificate it signed."""
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key or None)
    if ca:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """TLS towards gateways that use it. The chain is checked against the CA (the system's without one); host
    names are not, since instances are often reached by IP: the handshake's proofs authenticate the peer."""
    context = ssl.create_default_context(cafile=ca or None)
    context.check_hostname = False
    if cert:
        context.load_cert_chain(cert, key or None)
    return context
