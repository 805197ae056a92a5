import django_rq
import pytest

from monitoring.sink import sink


@pytest.fixture(autouse=True)
def _fresh_monitoring_buffers():
    """What other tests' predictions left in this process's buffers, and the open minutes and pushed log rows in
    Redis, are not this test's."""
    sink.discard()
    _forget_open_minutes()
    yield
    sink.discard()
    _forget_open_minutes()


def _forget_open_minutes() -> None:
    connection = django_rq.get_queue("default").connection
    for key in connection.scan_iter("sp:mon:*"):  # open minutes and pushed log rows
        connection.delete(key)
