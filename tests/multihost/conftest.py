import pytest


def pytest_collection_modifyitems(config, items):
    """The multi-host test starts a whole platform on the machine's PostgreSQL and Redis: only when asked for."""
    if "multihost" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="a live multi-host run (minutes, the machine's servers): pytest -m multihost")
    for item in items:
        if "multihost" in item.keywords:
            item.add_marker(skip)
