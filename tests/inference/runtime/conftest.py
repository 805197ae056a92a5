import pytest

from tests.inference.runtime.worker.helpers import remove_created_files


@pytest.fixture(autouse=True, scope="module")
def _remove_created_files():
    """Worker tests create short socket folders under /tmp (paths must stay under 108 bytes)."""
    yield
    remove_created_files()
