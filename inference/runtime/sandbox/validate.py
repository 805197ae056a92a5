# Child-process entry point: `python -m inference.runtime.sandbox.validate` reads one JSON request on stdin
# and writes one JSON answer on stdout. It loads untrusted artifacts, so it runs under the limits set
# by sandbox.py and imports the runtime lazily: an import that fails under the memory limit still
# gets reported as JSON instead of a traceback.
from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

SMOKE_ROWS = 3
SMOKE_EXAMPLE_ROWS = 100
TEST_HOOKS_ENV = "SERVINGPLATFORM_TEST_HOOKS"
_MAX_ERROR_CHARS = 1000
DEFAULT_MEMORY_BYTES = 4096 * 1024 * 1024  # VALIDATION_MEMORY_MB's default


class ValidationFailed(Exception):
    pass


def main() -> int:
    answer_stream = _claim_stdout()
    try:
        request = json.load(sys.stdin)
    except ValueError:
        answer: dict[str, Any] = failure("the validation request is not valid JSON")
    else:
        answer = validate_request(request)
    answer_stream.write(_encode(answer))
    answer_stream.flush()
    return 0


def validate_request(request: Any) -> dict[str, Any]:
    path = request.get("path") if isinstance(request, dict) else None
    try:
        return _validate(request)
    except MemoryError:
        return failure("the model needs more memory than validation allows")
    except Exception as exc:  # noqa: BLE001 - every failure must become a JSON answer
        return failure(_describe(exc, path if isinstance(path, str) else ""))


def failure(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


@dataclass(frozen=True)
class _Request:
    path: str
    format: str
    sha256: str
    task: str
    allow_pickle: bool
    signature: dict[str, Any] | None
    classes: list[Any] | None
    input_example: list[Any] | None


def _validate(raw: Any) -> dict[str, Any]:
    request = _parse(raw)
    _check_sha256(request.path, request.sha256)
    _check_format(request.path, request.format, allow_pickle=request.allow_pickle)
    _test_hooks(raw)
    return _load_and_smoke(request)


def _parse(raw: Any) -> _Request:
    if not isinstance(raw, dict):
        raise ValidationFailed("the validation request must be a JSON object")
    signature = _field(raw, "signature", (dict, type(None)))
    classes = _field(raw, "classes", (list, type(None)))
    return _Request(
        path=_field(raw, "path", str),
        format=_field(raw, "format", str),
        sha256=_field(raw, "sha256", str),
        task=_field(raw, "task", str),
        allow_pickle=_field(raw, "allow_pickle", bool),
        signature=signature or None,
        classes=classes or (signature or {}).get("classes"),
        input_example=_field(raw, "input_example", (list, type(None))) if "input_example" in raw else None,
    )


def _load_and_smoke(request: _Request) -> dict[str, Any]:
    from inference.runtime.contract.base import RuntimeOptions
    from inference.runtime.contract.flavor_table import create_runtime
    from inference.runtime.contract.formats import TORCHLESS_FORMATS
    from inference.runtime.contract.signature import merge_signatures
    from inference.runtime.flavors.torchless import refuse_torch

    if request.format in TORCHLESS_FORMATS:
        refuse_torch(f"while validating a {request.format} artifact")
    runtime = create_runtime(request.format)
    options = RuntimeOptions(threads=1, classes=request.classes)
    started = time.perf_counter()
    runtime.load(request.path, task=request.task, options=options)
    load_ms = (time.perf_counter() - started) * 1000.0
    signature = merge_signatures(runtime.signature(), request.signature, request.input_example)
    return {
        "ok": True,
        "signature": signature,
        "smoke": _smoke(runtime, signature, request.input_example),
        "load_ms": load_ms,
        "memory_mb": _peak_rss_mb(),
    }


def _smoke(runtime: Any, signature: dict[str, Any], example: list[Any] | None) -> dict[str, Any]:
    """One prediction on the input example's rows (real values) when there is one, else on generated rows."""
    from inference.runtime.contract.errors import ModelRuntimeError
    from inference.runtime.contract.frames import as_batch

    rows = _example_rows(example, signature) if example else runtime.smoke_inputs(SMOKE_ROWS, signature)
    try:
        result = runtime.predict(as_batch(rows, signature.get("columns")))
    except ModelRuntimeError as exc:
        if example:
            raise ValidationFailed(f"the smoke prediction on the input example failed: {exc}") from exc
        raise ValidationFailed(f"the smoke prediction on generated rows ({_described(signature)}) failed: {exc}. "
                               "Upload an input_example, or declare each column's dtype in signature.columns") \
            from exc
    count = len(rows)
    if len(result.predictions) != count:
        raise ValidationFailed(f"the model returned {len(result.predictions)} predictions for {count} rows")
    if result.probabilities is not None and len(result.probabilities) != count:
        raise ValidationFailed(f"the model returned {len(result.probabilities)} probability rows for {count}")
    return {"rows": count, "predictions": result.predictions, "from": "input_example" if example else "generated"}


def _example_rows(example: list[Any], signature: dict[str, Any]) -> list[Any]:
    from inference.runtime.contract.columns import ColumnError, typed_rows

    rows = example[:SMOKE_EXAMPLE_ROWS]
    columns = signature.get("columns")
    if not columns:
        return rows
    try:
        return typed_rows(rows, columns, max_rows=len(rows), field="input_example")
    except ColumnError as exc:
        raise ValidationFailed(exc.message) from None


def _described(signature: dict[str, Any]) -> str:
    columns = signature.get("columns")
    if not columns:
        return f"{signature.get('n_features') or '?'} numbers per row"
    return ", ".join(f"{c['name'][:40]}: {c['dtype']}" for c in columns[:8]) + (", ..." if len(columns) > 8 else "")


def _check_sha256(path: str, expected: str) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected.strip().lower():
        raise ValidationFailed("the artifact's sha256 does not match the recorded checksum")


def _check_format(path: str, declared: str, *, allow_pickle: bool) -> None:
    from inference.runtime.contract.formats import (
        ZIP_FORMATS,
        ArchiveTooLarge,
        check_zip_expansion,
        detect_format,
        is_pickle_format,
    )

    # Re-detect rather than trust the declared format: the file may have changed since upload.
    detected = detect_format(path)
    if is_pickle_format(detected) and not allow_pickle:
        raise ValidationFailed("pickle artifacts are disabled on this platform; upload a skops file")
    if detected != declared:
        raise ValidationFailed(f"the artifact is in {detected} format, not {declared}")
    if detected in ZIP_FORMATS:
        try:
            check_zip_expansion(path, _memory_limit_bytes())
        except ArchiveTooLarge as exc:
            raise ValidationFailed(str(exc)) from None


def _memory_limit_bytes() -> int:
    # The sandbox's data limit (run.py) is what the expanded members have to fit in; run by hand, without
    # one, the default validation budget stands in.
    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    return DEFAULT_MEMORY_BYTES if soft == resource.RLIM_INFINITY else soft


def _test_hooks(request: dict[str, Any]) -> None:
    # Let tests hit the sandbox's timeout and memory limit with a tiny artifact. Inert unless the
    # parent process itself runs with the test-hook variable set.
    if os.environ.get(TEST_HOOKS_ENV) != "1":
        return
    if "_test_alloc_mb" in request:
        ballast = bytearray(int(request["_test_alloc_mb"]) * 1024 * 1024)
        del ballast
    if "_test_sleep_s" in request:
        time.sleep(float(request["_test_sleep_s"]))


def _field(request: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = request.get(name)
    if not isinstance(value, kind):
        raise ValidationFailed(f"the validation request has no valid {name!r}")
    return value


def _describe(exc: BaseException, path: str) -> str:
    from inference.runtime.contract.base import scrub_paths
    from inference.runtime.contract.errors import ModelRuntimeError

    message = str(exc).strip()
    if isinstance(exc, FileNotFoundError):
        message = "the artifact file is missing"
    elif not isinstance(exc, (ModelRuntimeError, ValidationFailed, ValueError)) or not message:
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    message = scrub_paths(message, path, os.path.dirname(path))
    return message[:_MAX_ERROR_CHARS]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _encode(answer: dict[str, Any]) -> str:
    try:
        return json.dumps(answer, allow_nan=False)
    except ValueError:
        # NaN / inf from a smoke prediction: not valid JSON for the database or clients.
        return json.dumps(failure("the smoke prediction produced NaN or infinite values"))


def _claim_stdout() -> IO[str]:
    # Libraries print while loading (warnings, C++ logs). Keep fd 1 for the one JSON answer only:
    # everything else written to "stdout" from here on lands on stderr.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(answer_fd, "w")


if __name__ == "__main__":
    sys.exit(main())
