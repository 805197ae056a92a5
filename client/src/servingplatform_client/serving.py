"""Deployments and predictions from Python."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from servingplatform_client.errors import ConflictError, OperationFailedError
from servingplatform_client.payloads import to_inputs
from servingplatform_client.session import API, JSON, Session, present, quoted

BATCH_ITEMS_PER_CALL = 256  # the batch route's limit


class ServingMethods(Session):
    # --- deployments -------------------------------------------------------------------------------

    def list_deployments(self, *, include_stopped: bool = False) -> list[JSON]:
        return self._pages(f"{API}/deployments/", {"include_stopped": "true" if include_stopped else None})

    def get_deployment(self, endpoint: str) -> JSON:
        return self._obj("GET", f"{API}/deployments/{quoted(endpoint)}/")

    def deploy(self, endpoint: str, *, model: str, version: int | None = None, alias: str | None = None,
               wait: bool = True, timeout: float = 300.0, **knobs: Any) -> JSON:
        """Deploys a version (by number or alias) at `endpoint`; a live deployment of the same model there is
        moved to it instead (its old generation serves until the new one is ready). Knobs are the API's
        deployment fields (replicas, max_batch_size, device, pool, follow_alias...). With `wait`, returns once the
        endpoint serves the new generation, raising OperationFailedError if it failed to load."""
        if (version is None) == (alias is None):
            raise ValueError("give exactly one of version= or alias=")
        target = {"version": version} if version is not None else {"alias": alias}
        try:
            deployment = self._call("POST", f"{API}/deployments/",
                                    json={"endpoint": endpoint, "model": model, **target, **knobs})
        except ConflictError as exc:
            if exc.code != "endpoint_taken":
                raise
            deployment = self._redeploy(endpoint, model, {**target, **knobs}, exc)
        return self.wait_deployment(endpoint, timeout=timeout) if wait else deployment

    def _redeploy(self, endpoint: str, model: str, changes: JSON, taken: ConflictError) -> JSON:
        current = self.get_deployment(endpoint)
        if current["model"] != model:
            raise ConflictError(f"Endpoint '{endpoint}' serves model '{current['model']}', not '{model}': undeploy "
                                "it first or pick another endpoint.", status=taken.status, code=taken.code,
                                details={"deployment": current})
        return self._obj("PATCH", f"{API}/deployments/{quoted(endpoint)}/", json=changes)

    def undeploy(self, endpoint: str) -> JSON:
        return self._obj("DELETE", f"{API}/deployments/{quoted(endpoint)}/")

    def wait_deployment(self, endpoint: str, *, timeout: float = 300.0) -> JSON:
        """Waits until `endpoint` serves its current generation; raises OperationFailedError if it failed."""
        found = self._poll(lambda: self.get_deployment(endpoint), deployment_settled, timeout=timeout,
                           what=f"deploying {endpoint}",
                           describe=lambda d: " ".join(filter(None, [d["status"], d.get("status_reason")])))
        if found["status"] != "ready" or rollout_failed(found):
            raise OperationFailedError(f"{endpoint} failed: {found.get('status_reason') or found['status']}",
                                       code="deployment_failed", details=found)
        return found

    # --- predictions ---------------------------------------------------------------------------------

    def predict(self, endpoint: str, inputs: Any, *, parameters: JSON | None = None) -> JSON:
        """A prediction; `inputs` may be a DataFrame (sent as records), a NumPy array, records or rows."""
        body = present({"inputs": to_inputs(inputs), "parameters": parameters})
        return self._obj("POST", f"{API}/predict/{quoted(endpoint)}", json=body)

    def predict_many(self, requests: Iterable[JSON | tuple[str, Any]], *,
                     parameters: JSON | None = None) -> list[JSON]:
        """Many predictions in few round trips (the batch route, 256 a call): `requests` are
        `{"endpoint" | "model", "inputs", ...}` dicts or `(endpoint, inputs)` pairs. Returns one item per
        request, in order: `{"index", "ok", "result"}` or `{"index", "ok": False, "error"}`."""
        items = [batch_item(request, parameters) for request in requests]
        results: list[JSON] = []
        for start in range(0, len(items), BATCH_ITEMS_PER_CALL):
            chunk = items[start:start + BATCH_ITEMS_PER_CALL]
            answer = self._call("POST", f"{API}/predict/batch", json={"requests": chunk})
            results.extend({**item, "index": start + item["index"]} for item in answer["results"])
        return results

    def explain(self, endpoint: str, inputs: Any, *, parameters: JSON | None = None) -> JSON:
        body = present({"inputs": to_inputs(inputs), "parameters": parameters})
        return self._obj("POST", f"{API}/predict/{quoted(endpoint)}/explain", json=body)


def batch_item(request: JSON | tuple[str, Any], parameters: JSON | None) -> JSON:
    item = {"endpoint": request[0], "inputs": request[1]} if isinstance(request, tuple) else dict(request)
    item["inputs"] = to_inputs(item["inputs"])
    if parameters is not None and "parameters" not in item:
        item["parameters"] = parameters
    return item


def deployment_settled(deployment: JSON) -> bool:
    if deployment["status"] in ("failed", "stopped") or rollout_failed(deployment):
        return True
    # The model server clears the reason once the current generation serves.
    return deployment["status"] == "ready" and not str(deployment.get("status_reason") or "").startswith("rolling out")


def rollout_failed(deployment: JSON) -> bool:
    # The old generation keeps serving when a new one fails to load; the status stays "ready".
    return str(deployment.get("status_reason") or "").startswith(f"rollout of generation {deployment['generation']} "
                                                                 "failed")
