import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.linear_model import LogisticRegression

from inference.runtime.contract.flavor_table import RUNTIMES, create_runtime, get_runtime_class
from inference.runtime.contract.formats import (
    FLAVOR_FORMATS,
    FormatMismatch,
    UnknownFormat,
    check_flavor,
    detect_format,
    is_pickle_format,
)
from tests.paths import REPO_ROOT


class Linear4(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class MarkerPayload:
    """Unpickling this creates the marker file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _fitted_classifier() -> LogisticRegression:
    x = np.random.default_rng(0).normal(size=(40, 4))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_skops_file_is_skops(tmp_path):
    path = tmp_path / "model.skops"
    sio.dump(_fitted_classifier(), path)
    assert detect_format(path) == "skops"


def test_joblib_dump_is_pickle(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(_fitted_classifier(), path)
    assert detect_format(path) == "pickle"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_raw_pickles_of_every_binary_protocol_are_pickle(tmp_path, protocol):
    path = _write(tmp_path / "model.bin", pickle.dumps({"a": [1, 2]}, protocol=protocol))
    assert detect_format(path) == "pickle"


def test_scripted_and_traced_modules_are_torchscript(tmp_path):
    module = Linear4().eval()
    torch.jit.save(torch.jit.script(module), tmp_path / "scripted.pt")
    torch.jit.save(torch.jit.trace(module, torch.zeros(2, 4)), tmp_path / "traced.pt")
    assert detect_format(tmp_path / "scripted.pt") == "torchscript"
    assert detect_format(tmp_path / "traced.pt") == "torchscript"


def test_exported_program_is_torch_export(tmp_path):
    program = torch.export.export(Linear4().eval(), (torch.zeros(2, 4),))
    torch.export.save(program, tmp_path / "model.pt2")
    assert detect_format(tmp_path / "model.pt2") == "torch_export"


def test_plain_torch_save_is_a_pickle_in_disguise(tmp_path):
    torch.save(Linear4(), tmp_path / "module.pt")
    torch.save(Linear4().state_dict(), tmp_path / "weights.pt")
    assert detect_format(tmp_path / "module.pt") == "pickle"
    assert detect_format(tmp_path / "weights.pt") == "pickle"


def test_detection_ignores_the_file_name(tmp_path):
    skops_named_pt = tmp_path / "model.pt"
    sio.dump(_fitted_classifier(), skops_named_pt)
    pickle_named_skops = _write(tmp_path / "model.skops", pickle.dumps([1], protocol=4))
    assert detect_format(skops_named_pt) == "skops"
    assert detect_format(pickle_named_skops) == "pickle"


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"a,b,c\n1,2,3\n",
        np.random.default_rng(1).bytes(4096),
        b"(lp0\nI1\na.",  # protocol-0 pickle: text opcodes, not accepted
        b"\x80\x09garbage",  # pickle header with a protocol that does not exist
        b"PK\x05\x06" + b"\x00" * 18,  # an empty zip
        _zip_bytes({"data.csv": b"a,b\n1,2\n"}),
        _zip_bytes({"model/version": b"3", "model/byteorder": b"little"}),
        b"PK\x03\x04 truncated zip",
    ],
    ids=[
        "empty",
        "csv",
        "random",
        "pickle-p0",
        "bad-protocol",
        "empty-zip",
        "zip-csv",
        "zip-torchlike",
        "bad-zip",
    ],
)
def test_anything_else_is_refused_without_leaking_the_path(tmp_path, content):
    path = _write(tmp_path / "upload.bin", content)
    with pytest.raises(UnknownFormat) as caught:
        detect_format(path)
    assert str(tmp_path) not in str(caught.value)


def test_compressed_joblib_is_refused(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(_fitted_classifier(), path, compress=3)
    with pytest.raises(UnknownFormat):
        detect_format(path)


def test_malicious_pickle_is_detected_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "model.pkl", pickle.dumps(MarkerPayload(marker), protocol=4))
    assert detect_format(path) == "pickle"
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the payload is real: loading it does create the marker
    assert marker.exists()


def test_flavors_accept_only_their_formats():
    check_flavor("sklearn", "skops")
    check_flavor("sklearn", "pickle")
    check_flavor("torch", "torch_export")
    with pytest.raises(FormatMismatch, match="torch"):
        check_flavor("torch", "pickle")
    with pytest.raises(FormatMismatch, match="sklearn"):
        check_flavor("sklearn", "torchscript")
    check_flavor("xgboost", "xgboost_ubj")
    for flavor in ("xgboost", "lightgbm", "onnx"):
        with pytest.raises(FormatMismatch, match=flavor):
            check_flavor(flavor, "pickle")  # never, whatever ALLOW_PICKLE_ARTIFACTS says
    with pytest.raises(FormatMismatch, match="unknown flavor"):
        check_flavor("keras", "skops")


def test_only_pickle_is_a_pickle_format():
    assert is_pickle_format("pickle")
    assert not any(is_pickle_format(f) for f in ("skops", "torchscript", "torch_export"))


def test_every_flavor_format_has_a_runtime_with_that_format():
    formats = {fmt for fmts in FLAVOR_FORMATS.values() for fmt in fmts}
    assert formats == set(RUNTIMES)
    for fmt in formats:
        assert get_runtime_class(fmt).format == fmt
    assert create_runtime("skops").format == "skops"


def test_unknown_runtime_format_is_refused():
    with pytest.raises(UnknownFormat):
        get_runtime_class("keras_h5")


def test_importing_the_contract_loads_no_ml_framework_or_django():
    code = (
        "import sys, inference.runtime, inference.runtime.contract.flavor_table, inference.runtime.contract.formats,"
        " inference.runtime.sandbox.run; print(sorted(m for m in ('torch', 'sklearn', 'skops', 'django')"
        " if m in sys.modules))"
    )
    env = {"PATH": os.environ.get("PATH", "")}
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
