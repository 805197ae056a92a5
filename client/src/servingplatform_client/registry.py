"""The model registry from Python: models, versions, aliases, and register_model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servingplatform_client import artifacts
from servingplatform_client.errors import ConflictError, NotFoundError, OperationFailedError
from servingplatform_client.payloads import dumps, example_records
from servingplatform_client.progress import ReadProgress
from servingplatform_client.session import API, JSON, FilePart, Session, json_field, present, quoted


class RegistryMethods(Session):
    def list_models(self, *, task: str | None = None, tag: str | None = None, name: str | None = None) -> list[JSON]:
        return self._pages(f"{API}/models/", {"task": task, "tag": tag, "name": name})

    def get_model(self, name: str) -> JSON:
        return self._obj("GET", f"{API}/models/{quoted(name)}/")

    def create_model(self, name: str, *, task: str = "other", description: str = "",
                     tags: dict[str, str] | None = None) -> JSON:
        body = {"name": name, "task": task, "description": description, "tags": tags or {}}
        return self._obj("POST", f"{API}/models/", json=body)

    def list_versions(self, name: str, *, status: str | None = None, flavor: str | None = None,
                      tag: str | None = None) -> list[JSON]:
        return self._pages(f"{API}/models/{quoted(name)}/versions/", {"status": status, "flavor": flavor, "tag": tag})

    def get_version(self, name: str, version: int | str) -> JSON:
        """A version by number or by alias (`"production"`)."""
        return self._obj("GET", f"{API}/models/{quoted(name)}/versions/{quoted(version)}/")

    def set_alias(self, name: str, alias: str, version: int) -> JSON:
        return self._obj("PUT", f"{API}/models/{quoted(name)}/aliases/{quoted(alias)}/", json={"version": version})

    def wait_version(self, name: str, version: int | str, *, timeout: float = 300.0) -> JSON:
        """Waits until a version's validation ends; raises OperationFailedError with the reason if it failed."""
        found = self._poll(lambda: self.get_version(name, version), lambda v: v["status"] in ("ready", "failed"),
                           timeout=timeout, what=f"validating {name} v{version}", describe=lambda v: v["status"])
        if found["status"] == "failed":
            raise OperationFailedError(f"{name} v{found['version']} failed validation: {found['status_reason']}",
                                       code="validation_failed", details=found)
        return found

    def register_model(self, model_or_path: Any, name: str, *, flavor: str | None = None,
                       input_example: Any = None, signature: JSON | None = None, metrics: JSON | None = None,
                       tags: dict[str, str] | None = None, description: str | None = None, alias: str | None = None,
                       wait: bool = True, timeout: float = 300.0, task: str | None = None) -> JSON:
        """Uploads a fitted model (or a saved artifact's path) as a new version of model `name`, creating the
        model when missing; returns the version as the API does. With `wait`, waits for its validation and
        raises OperationFailedError with the reason when it fails. `alias` is moved to the new version (after
        validation when waiting). `input_example` (a DataFrame, records, rows or an array) is sent with the
        version as a JSON list of records and, for torch modules, is the example input of torch.export.
        `task` is for a model created on the way (default: classification or regression as the estimator
        says, else other)."""
        with artifacts.saved(model_or_path, flavor=flavor, input_example=input_example) as artifact:
            self._ensure_model(name, task or artifact.task)
            fields = present({"flavor": artifact.flavor, "description": description,
                              "signature": json_field(signature), "metrics": json_field(metrics),
                              "tags": json_field(tags)})
            extra: dict[str, FilePart] = {}
            if input_example is not None:
                names = (signature or {}).get("feature_names") or artifact.feature_names
                extra["input_example"] = ("input_example.json", dumps(example_records(input_example, names)),
                                          "application/json")
            version = self._upload_version(name, artifact.path, fields, extra)
        if wait:
            version = self.wait_version(name, version["version"], timeout=timeout)
        if alias:
            self.set_alias(name, alias, version["version"])
            version = self.get_version(name, version["version"])
        return version

    def _ensure_model(self, name: str, task: str) -> None:
        try:
            self.get_model(name)
        except NotFoundError:
            try:
                self.create_model(name, task=task)
            except ConflictError:
                pass  # created meanwhile by someone else: the upload goes to it all the same

    def _upload_version(self, name: str, path: Path, fields: dict[str, str], extra: dict[str, FilePart]) -> JSON:
        size = path.stat().st_size
        with path.open("rb") as handle, self.progress.task(f"uploading {path.name}", total=size,
                                                            kind="bytes") as task:
            files = {"artifact": (path.name, ReadProgress(handle, task), "application/octet-stream"), **extra}
            # Large artifacts take a while to send: the write timeout grows with the size.
            return self._obj("POST", f"{API}/models/{quoted(name)}/versions/", data=fields, files=files,
                             timeout=max(self._http.timeout, size / 1_000_000))
