import pytest


@pytest.fixture(autouse=True)
def _fresh_experiment_state():
    """The figures buffer is per process: no test may see another's figures. (The routing table is loaded
    again for every test: tests/conftest.py announces every topic changed.)"""
    from experiments import recording

    recording.recorder.discard()
    yield
    recording.recorder.discard()
