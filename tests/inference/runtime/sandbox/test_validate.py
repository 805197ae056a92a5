import hashlib
import json
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.linear_model import LogisticRegression

from inference.runtime.sandbox import run as sandbox
from inference.runtime.sandbox.run import child_environment, run_validation
from inference.runtime.sandbox.validate import validate_request

X = np.random.default_rng(5).normal(size=(60, 3))
Y = (X[:, 0] > 0).astype(int)


class MarkerPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _request(path: Path, fmt: str, **fields) -> dict:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    base = {
        "path": str(path),
        "format": fmt,
        "sha256": digest,
        "task": "classification",
        "allow_pickle": False,
    }
    return {**base, "signature": None, "classes": None, **fields}


def _skops(tmp_path: Path) -> Path:
    path = tmp_path / "model.skops"
    sio.dump(LogisticRegression().fit(X, Y), path)
    return path


def _torchscript(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(Mlp().eval()), path)
    return path


def _malicious(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(MarkerPayload(marker), protocol=4))
    return path, marker


# In-process: the validation logic itself.


def test_valid_torchscript_yields_signature_and_smoke_predictions(tmp_path):
    answer = validate_request(_request(_torchscript(tmp_path), "torchscript", classes=["no", "yes"]))
    assert answer["ok"] is True, answer
    assert answer["signature"]["n_features"] == 3
    assert answer["signature"]["classes"] == ["no", "yes"]
    assert answer["smoke"]["rows"] == 3
    assert set(answer["smoke"]["predictions"]) <= {"no", "yes"}
    assert answer["load_ms"] > 0 and answer["memory_mb"] > 0


def test_given_signature_that_contradicts_the_model_fails(tmp_path):
    answer = validate_request(_request(_torchscript(tmp_path), "torchscript", signature={"n_features": 5}))
    assert answer == {"ok": False, "error": "the signature's n_features (5) contradicts the model (3)"}


def test_declared_format_must_match_the_content(tmp_path):
    answer = validate_request(_request(_torchscript(tmp_path), "skops"))
    assert answer["ok"] is False
    assert "torchscript" in answer["error"] and str(tmp_path) not in answer["error"]


def test_pickle_is_refused_unless_allowed_and_runs_only_when_allowed(tmp_path):
    path, marker = _malicious(tmp_path)
    refused = validate_request(_request(path, "pickle"))
    assert refused["ok"] is False and "pickle" in refused["error"]
    assert not marker.exists()
    allowed = validate_request(_request(path, "pickle", allow_pickle=True))
    assert allowed["ok"] is False  # it ran (that is what allow_pickle means) but is no estimator
    assert marker.exists()


def test_broken_artifact_error_does_not_leak_paths(tmp_path):
    path = tmp_path / "broken.pt"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("broken/data.pkl", "broken/constants.pkl", "broken/code/__torch__.py", "broken/version"):
            archive.writestr(name, b"not what torch expects")
    answer = validate_request(_request(path, "torchscript"))
    assert answer["ok"] is False
    assert str(tmp_path) not in answer["error"] and "broken.pt" not in answer["error"]


def test_missing_file_and_malformed_requests_fail_cleanly(tmp_path):
    missing = validate_request(
        {**_request(_torchscript(tmp_path), "torchscript"), "path": str(tmp_path / "gone.pt")}
    )
    assert missing == {"ok": False, "error": "the artifact file is missing"}
    assert validate_request(["not", "an", "object"])["ok"] is False
    incomplete = {"path": "x", "format": "skops", "sha256": "0", "task": "regression"}
    assert validate_request(incomplete) == {
        "ok": False,
        "error": "the validation request has no valid 'allow_pickle'",
    }


# Through the sandboxed child process.


def test_sandbox_validates_a_skops_model(tmp_path):
    request = _request(_skops(tmp_path), "skops", signature={"feature_names": ["a", "b", "c"]})
    answer = run_validation(request, timeout_s=60, memory_mb=2048)
    assert answer["ok"] is True, answer
    assert answer["signature"]["feature_names"] == ["a", "b", "c"]
    assert answer["signature"]["classes"] == [0, 1]
    assert len(answer["smoke"]["predictions"]) == 3


@pytest.mark.parametrize(("fmt", "loads_torch"), [("skops", False), ("torchscript", True)])
def test_only_validations_that_need_torch_import_it(tmp_path, fmt, loads_torch):
    # skops would pull torch in through scikit-learn's array API shim: seconds and ~300 MB per upload.
    path = _skops(tmp_path) if fmt == "skops" else _torchscript(tmp_path)
    script = ("import json, sys; from inference.runtime.sandbox.validate import validate_request; "
              "answer = validate_request(json.loads(sys.argv[1])); "
              "print(json.dumps({'ok': answer['ok'], 'torch': 'torch' in sys.modules}))")
    child = subprocess.run([sys.executable, "-c", script, json.dumps(_request(path, fmt))], capture_output=True,
                           text=True, check=True, cwd=sandbox.REPO_ROOT, env=child_environment(), timeout=120)
    assert json.loads(child.stdout.splitlines()[-1]) == {"ok": True, "torch": loads_torch}


def test_sandbox_reports_checksum_mismatch(tmp_path):
    request = {**_request(_skops(tmp_path), "skops"), "sha256": "0" * 64}
    assert run_validation(request, timeout_s=30, memory_mb=1024) == {
        "ok": False,
        "error": "the artifact's sha256 does not match the recorded checksum",
    }


def test_sandbox_refuses_a_malicious_pickle_without_running_it(tmp_path):
    path, marker = _malicious(tmp_path)
    answer = run_validation(_request(path, "pickle"), timeout_s=30, memory_mb=1024)
    assert answer["ok"] is False and "pickle" in answer["error"]
    assert not marker.exists()


def test_sandbox_kills_a_validation_that_runs_too_long(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVINGPLATFORM_TEST_HOOKS", "1")
    request = _request(_skops(tmp_path), "skops", _test_sleep_s=30)
    started = time.monotonic()
    answer = run_validation(request, timeout_s=1, memory_mb=1024)
    assert answer == {"ok": False, "error": "validation timed out after 1s"}
    assert time.monotonic() - started < 10


def test_sandbox_enforces_the_memory_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVINGPLATFORM_TEST_HOOKS", "1")
    request = _request(_skops(tmp_path), "skops", _test_alloc_mb=1024)
    answer = run_validation(request, timeout_s=30, memory_mb=256)
    assert answer == {"ok": False, "error": "the model needs more memory than validation allows"}


def test_child_environment_keeps_secrets_and_test_hooks_out(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pw@db/x")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("SERVINGPLATFORM_TEST_HOOKS", raising=False)
    env = child_environment()
    assert "SECRET_KEY" not in env and "DATABASE_URL" not in env
    assert "SERVINGPLATFORM_TEST_HOOKS" not in env
    assert env["OMP_NUM_THREADS"] == "2" and env["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setenv("SERVINGPLATFORM_TEST_HOOKS", "1")
    assert child_environment()["SERVINGPLATFORM_TEST_HOOKS"] == "1"


@pytest.mark.parametrize(
    ("returncode", "stdout", "error"),
    [
        (0, b"Loading...\n{not json", "validation produced no valid answer (exit status 0)"),
        (0, b'{"signature": {}}', "validation produced no valid answer (exit status 0)"),
        (1, b"", "validation produced no valid answer (exit status 1)"),
        (-9, b"", "validation failed: it was killed, most likely for running out of memory"),
        (-24, b"", "validation failed: it used up its CPU time limit"),
    ],
)
def test_child_exits_without_a_valid_answer_are_failures(returncode, stdout, error):
    assert sandbox._answer(returncode, stdout, b"trace at /srv/models/x.pt") == {"ok": False, "error": error}


def _declaring_bomb(tmp_path: Path, declared: int) -> Path:
    """A skops-shaped zip of a few hundred bytes whose member declares `declared` bytes expanded: the central
    directory's and the local header's uncompressed-size fields are rewritten, which is all a bomb needs."""
    path = tmp_path / "bomb.skops"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", "{}")
        archive.writestr("data.npy", bytes(4096))
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        at = raw.rfind(signature)  # data.npy's headers: the last of each kind
        raw[at + offset:at + offset + 4] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


def test_sandbox_refuses_a_zip_bomb_by_its_declared_size_before_reading_it(tmp_path):
    path = _declaring_bomb(tmp_path, 0xFFFF0000)  # ~4 GB from a file of a few hundred bytes
    assert path.stat().st_size < 1024
    started = time.monotonic()
    answer = run_validation(_request(path, "skops"), timeout_s=60, memory_mb=1024)
    assert answer["ok"] is False
    assert answer["error"].startswith("the archive expands to 4.0 GB (")
    assert "more than the 1.0 GB of memory validation may use" in answer["error"]
    assert time.monotonic() - started < 20  # a child start; inflating 4 GB took minutes and 3.2 GB of memory


def test_a_real_zip_bomb_is_refused_from_its_central_directory(tmp_path):
    from inference.runtime.contract.formats import ArchiveTooLarge, check_zip_expansion

    path = tmp_path / "zeros.skops"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("schema.json", "{}")
        with archive.open("data.npy", "w") as member:
            for _ in range(48):
                member.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ArchiveTooLarge, match=r"expands to 48\.0 MB .* more than the 32\.0 MB"):
        check_zip_expansion(path, 32 << 20)
    check_zip_expansion(path, 64 << 20)  # within the limit: nothing to say


def test_a_model_within_the_limit_still_validates_in_process(tmp_path):
    answer = validate_request(_request(_skops(tmp_path), "skops"))
    assert answer["ok"] is True, answer
