# The event-loop side of the worker channel (see protocol.py), for the prediction fast lane.
#
# The worker answers every frame by its id as soon as that request's batch is done, whatever the order, so
# one connection per replica carries every request this process has in flight: no thread per request, no
# pool of connections; the requests that arrive together leave in one write, and the worker answers a batch in
# one write (protocol.Outbox). The blocking client
# (client.py) keeps one request per connection for gunicorn-style threads; both raise the same errors.
from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from inference.runtime.contract.gateway import is_remote
from inference.runtime.contract.protocol import FrameError, Outbox, decode, encode, pop_frames
from inference.runtime.web.client import DeadlineExceeded, NotDelivered, WorkerUnavailable, checked_answer, time_left


class AsyncWorkerClient:
    """One per event loop. `call` has the blocking WorkerClient.call's contract, awaited.

    `remote(address, protocol_factory)` connects to a replica on another host (remote.py) and returns the
    protocol it attached; without it, such addresses are not delivered to.
    """

    def __init__(self, remote: Callable[[str, Callable[[], Any]], Awaitable[Any]] | None = None) -> None:
        self._remote = remote
        self._channels: dict[str, _Channel] = {}
        self._connecting: dict[str, asyncio.Task[_Channel]] = {}
        self._turn = 0
        self._prefix = f"{os.getpid()}.a{id(self):x}."
        self._sequence = itertools.count(1)

    async def call(self, socket_paths: Sequence[str], message: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        if not socket_paths:
            raise WorkerUnavailable("no worker replica is running")
        first = self._turn % len(socket_paths)
        self._turn += 1
        request_id = f"{self._prefix}{next(self._sequence)}"
        frame = encode({**message, "id": request_id, "deadline": deadline})
        try:
            return await self._call_one(socket_paths[first], frame, request_id, deadline)
        except NotDelivered as exc:
            if len(socket_paths) == 1 or time.time() >= deadline:
                raise WorkerUnavailable(str(exc)) from None
        try:
            return await self._call_one(socket_paths[(first + 1) % len(socket_paths)], frame, request_id, deadline)
        except NotDelivered as exc:
            raise WorkerUnavailable(str(exc)) from None

    def close(self) -> None:
        for channel in list(self._channels.values()):
            channel.close()

    async def _call_one(self, path: str, frame: bytes, request_id: str, deadline: float) -> dict[str, Any]:
        channel = await self._channel(path, deadline)
        left = time_left(deadline)  # raises before anything is sent when the deadline has passed
        answer = channel.send(request_id, frame)
        timer = asyncio.get_running_loop().call_later(left, _expire, answer)
        try:
            return checked_answer(await answer)
        finally:
            timer.cancel()
            channel.pending.pop(request_id, None)  # a late answer is then dropped on arrival

    async def _channel(self, path: str, deadline: float) -> _Channel:
        channel = self._channels.get(path)
        if channel is not None and not channel.closed:
            return channel
        connecting = self._connecting.get(path)
        if connecting is None:
            connecting = asyncio.get_running_loop().create_task(self._connect(path))
            self._connecting[path] = connecting
            connecting.add_done_callback(lambda _: self._connecting.pop(path, None))
        try:
            # shield: one caller's deadline must not cancel a connection others are waiting for.
            return await asyncio.wait_for(asyncio.shield(connecting), time_left(deadline))
        except TimeoutError:
            raise DeadlineExceeded("no worker accepted the connection before the deadline") from None

    async def _connect(self, path: str) -> _Channel:
        channel: _Channel
        if is_remote(path):
            if self._remote is None:
                raise NotDelivered("this process cannot reach other hosts")
            channel = await self._remote(path, _Channel)
        else:
            try:
                _, channel = await asyncio.get_running_loop().create_unix_connection(_Channel, path)
            except OSError:
                raise NotDelivered("no worker is listening") from None
        channel.on_close = lambda: self._channels.pop(path, None) if self._channels.get(path) is channel else None
        self._channels[path] = channel
        return channel


class _Channel(asyncio.Protocol):
    """One connection to one replica: frames out, answers in, matched to their callers by id."""

    def __init__(self) -> None:
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.closed = False
        self.on_close: Any = None
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._outbox = Outbox()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check (uvloop's transports do not derive from asyncio.Transport), so the type is
        # asserted: asyncio's Protocol hands connection_made a BaseTransport.
        self._transport = self._outbox.transport = transport  # type: ignore[assignment]

    def send(self, request_id: str, frame: bytes) -> asyncio.Future[dict[str, Any]]:
        if self.closed or self._transport is None or self._transport.is_closing():
            raise NotDelivered("the worker closed the connection")
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = answer
        self._outbox.put(frame, request_id)  # written at the end of this pass of the loop
        return answer

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            for body in pop_frames(self._buffer):
                answer = decode(body)
                # An answer without an id (None) pops nothing; the dict's keys are str.
                waiting = self.pending.pop(answer.get("id"), None)  # type: ignore[arg-type]
                if waiting is not None and not waiting.done():
                    waiting.set_result(answer)
        except (ValueError, FrameError):
            self._fail("the worker broke the framing or sent a frame that is not a JSON object")

    def connection_lost(self, exc: Exception | None) -> None:
        # Requests already sent are not replayed elsewhere: one of them may be what killed the worker.
        self._fail("the worker went away during the request")

    def close(self) -> None:
        if self._transport is not None:
            self._outbox.flush()
            self._transport.close()

    def _fail(self, reason: str) -> None:
        self.closed = True
        # Requests still in the outbox never reached the worker: those may go to another replica.
        unsent = set(self._outbox.discard())
        pending, self.pending = self.pending, {}
        for request_id, waiting in pending.items():
            if not waiting.done():
                waiting.set_exception(NotDelivered(reason) if request_id in unsent else WorkerUnavailable(reason))
        self.close()
        if self.on_close is not None:
            self.on_close()
            self.on_close = None


def _expire(answer: asyncio.Future[dict[str, Any]]) -> None:
    if not answer.done():
        answer.set_exception(DeadlineExceeded("the worker did not answer before the deadline"))
