import os

import pytest


def pytest_collection_modifyitems(config, items):
    """The multi-host test starts a whole platform on the machine's PostgreSQL and Redis: only when asked for
    (`pytest -m multihost`, or MULTIHOST=1 as .ci/run sets it)."""
    if "multihost" in (config.getoption("-m") or "") or os.environ.get("MULTIHOST") == "1":
        return
    skip = pytest.mark.skip(reason="a live multi-host run (minutes, the machine's servers): pytest -m multihost "
                                   "or MULTIHOST=1")
    for item in items:
        if "multihost" in item.keywords:
            item.add_marker(skip)
