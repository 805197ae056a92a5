import pytest


@pytest.fixture(autouse=True)
def _fresh_experiment_state():
    """The routing table and the figures buffer are per process: no test may see another's experiments."""
    from experiments import recording
    from experiments.hooks import router

    router.table.invalidate()
    recording.recorder.discard()
    yield
    router.table.invalidate()
    recording.recorder.discard()
