# What a runtime raises. Each error carries the status a client would see and a message safe to show one.
from __future__ import annotations

from typing import ClassVar


class ModelRuntimeError(Exception):
    code: ClassVar[str] = "runtime_error"
    status_code: int = 500  # a class default; an InputError carries its own (400 or 413)


class ArtifactLoadError(ModelRuntimeError):
    code = "artifact_load_failed"
    status_code = 422


class UntrustedArtifact(ArtifactLoadError):
    code = "untrusted_artifact"

    def __init__(self, types: list[str]) -> None:
        self.types = sorted(types)
        super().__init__(f"the artifact contains types outside the allow-list: {', '.join(self.types)}")


class SignatureMismatch(ModelRuntimeError):
    code = "signature_mismatch"
    status_code = 422


class PredictionError(ModelRuntimeError):
    code = "prediction_failed"
    status_code = 400


class UnsupportedOperation(ModelRuntimeError):
    """The model cannot do what was asked (uncertainty without dropout, explaining text, ...)."""

    code = "unsupported"
    status_code = 400
