"""protocol.Outbox: the frames of one event-loop pass leave in one write, in order; none are written to a closing
transport; the tags of frames never written are handed back."""

import asyncio

from inference.runtime.contract.protocol import Outbox


class RecordingTransport:
    """The transport's collaborator role only: what was written, and whether it is closing."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing


async def end_of_pass() -> None:
    """Yields once: the flush put() scheduled was queued before this task's wake-up, so it has run by then."""
    await asyncio.sleep(0)


def test_frames_put_in_one_pass_leave_in_one_write_in_order():
    async def scenario():
        outbox, transport = Outbox(), RecordingTransport()
        outbox.transport = transport
        for frame in (b"a", b"bb", b"ccc"):
            outbox.put(frame)
        assert transport.writes == []  # nothing before the end of the pass
        await end_of_pass()
        outbox.put(b"d")
        await end_of_pass()
        return transport.writes

    assert asyncio.run(scenario()) == [b"abbccc", b"d"]


def test_unwritten_frames_are_discarded_with_their_tags_and_a_closing_transport_gets_nothing():
    async def scenario():
        outbox, transport = Outbox(), RecordingTransport()
        outbox.transport = transport
        outbox.put(b"one", "id-1")
        outbox.put(b"two", "id-2")
        tags = outbox.discard()
        await end_of_pass()
        transport.closing = True
        outbox.put(b"three", "id-3")
        await end_of_pass()
        return tags, transport.writes, outbox.discard()

    tags, writes, after_flush = asyncio.run(scenario())
    assert tags == ["id-1", "id-2"]
    assert writes == []
    assert after_flush == []  # the flush took the frame, even though a closing transport could not carry it
