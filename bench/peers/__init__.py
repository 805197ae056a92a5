"""The peers the platform is measured against (issue 20), each in its own virtualenv under bench/.peers/,
each at its best documented configuration, serving the demo's churn-logreg and fraud-forest.

A peer (base.Peer) creates its venv (`ensure_venv`), starts (`start(port, models, names)` -> a Server,
stopped with `.stop()`), builds the body of one single-row request in its protocol (`template`, `body`,
`path`) and checks its answers against the models' own predict_proba (`check`). bench_peers.py runs them;
bench_serving.py can call bench_peers.measure_peer() and bench_peers.print_versus() to put the platform
in the same table.
"""

from __future__ import annotations

from .base import Peer
from .floors import FloorHttp, FloorPredict
from .kserve import KServe, KServeV2
from .mlserver import MLServer
from .pytriton import PyTriton

# The default order and set: the floors first (they bound every other figure), then the peers.
PEERS: dict[str, Peer] = {peer.name: peer for peer in (FloorHttp(), FloorPredict(), KServe(), PyTriton(), MLServer())}
# Measured on request only.
EXTRA_PEERS: dict[str, Peer] = {peer.name: peer for peer in (KServeV2(),)}
FLOORS = ("floor-http", "floor-predict")


def peer(name: str) -> Peer:
    try:
        return {**PEERS, **EXTRA_PEERS}[name]
    except KeyError:
        raise SystemExit(f"unknown peer {name!r}: choose from {', '.join([*PEERS, *EXTRA_PEERS])}") from None
