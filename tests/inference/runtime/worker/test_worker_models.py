"""Worker features on real artifacts: ensembles, Monte Carlo dropout, explanations, torch optimizations."""


import numpy as np
import pytest
import torch

from tests.inference.runtime.worker.helpers import (
    DropoutNet,
    X,
    in_process_skops,
    member,
    short_folder,
    skops_artifact,
    spec_for,
    start_worker,
    torchscript_artifact,
    toy_member,
)

pytestmark = pytest.mark.slow


def test_ensembles_average_values_by_weight():
    folder = short_folder()
    members = [
        toy_member(folder, "a.json", weights=[1, 0, 0], weight=3.0),
        toy_member(folder, "b.json", weights=[0, 0, 1], weight=1.0),
    ]
    worker = start_worker(spec_for(members, folder), folder=folder)
    try:
        assert worker.call("predict", [[4, 0, 8]])["predictions"] == [0.75 * 4 + 0.25 * 8]
    finally:
        worker.stop()


def test_classifier_ensembles_average_probabilities_and_refuse_different_classes():
    folder = short_folder()
    a = skops_artifact(folder, "a.skops", (X[:, 0] > 0).astype(int))
    b = skops_artifact(folder, "b.skops", (X[:, 1] > 0).astype(int))
    spec = spec_for([member(a, "skops", weight=2.0), member(b, "skops")], folder, task="classification")
    worker = start_worker(spec)
    try:
        rows = X[:5].tolist()
        answer = worker.call("predict", rows)
        expected = (
            2 * np.array(in_process_skops(a).predict(rows).probabilities)
            + np.array(in_process_skops(b).predict(rows).probabilities)
        ) / 3
        np.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-12)
        assert answer["predictions"] == expected.argmax(axis=1).tolist() and answer["classes"] == [0, 1]
    finally:
        worker.stop()
    members = [toy_member(folder, "c.json"), toy_member(folder, "d.json", classes=["no", "yes"])]
    mismatch = start_worker(spec_for(members, folder, task="classification"))
    assert mismatch.event["event"] == "failed" and "same classes" in mismatch.event["error"]


def test_mc_dropout_gives_a_spread_and_leaves_normal_predictions_deterministic(torch_worker):
    rows = X[:3].tolist()
    answer = torch_worker.call("predict", rows, params={"uncertainty": {"samples": 30}})
    assert answer["ok"], answer
    std = np.array(answer["std"])
    assert std.shape == (3, 3) and (std > 0).all()
    np.testing.assert_allclose(np.sum(answer["probabilities"], axis=1), 1.0)
    assert answer["predictions"] == np.argmax(answer["probabilities"], axis=1).tolist()
    first, second = torch_worker.call("predict", rows), torch_worker.call("predict", rows)
    assert first["probabilities"] == second["probabilities"] and first["std"] is None


def test_uncertainty_is_unsupported_without_switchable_dropout(sklearn_worker):
    answer = sklearn_worker.call("predict", [X[0].tolist()], params={"uncertainty": {"samples": 5}})
    assert answer["error"]["code"] == "unsupported"
    folder = short_folder()
    traced = torchscript_artifact(folder, "traced.pt", trace=True)  # tracing bakes dropout off
    worker = start_worker(spec_for([member(traced, "torchscript")], folder, task="classification"))
    try:
        answer = worker.call("predict", [X[0].tolist()], params={"uncertainty": {"samples": 5}})
        assert answer["error"]["code"] == "unsupported"
    finally:
        worker.stop()


def test_explain_ranks_the_only_feature_the_model_uses_first(sklearn_worker):
    rows = [[2.0, 0.5, -0.3, 1.0], [-1.5, 1.0, 0.2, -0.7]]
    answer = sklearn_worker.call("explain", rows)
    assert answer["ok"], answer
    importances = np.array(answer["importances"])
    assert importances.shape == (2, 4)
    assert importances.argmax(axis=1).tolist() == [0, 0]
    assert answer["baseline"] == [0.0] * 4 and answer["baseline_prediction"] in (0, 1)
    assert answer["predictions"] == [1, 0]
    assert int(np.argmax(answer["builtin_importances"])) == 0
    custom = sklearn_worker.call("explain", rows[:1], params={"baseline": [2.0, 0.0, 0.0, 0.0]})
    assert custom["importances"][0][0] == pytest.approx(0.0, abs=1e-9)  # feature 0 equals its baseline


def test_explain_is_unsupported_for_text_models():
    folder = short_folder()
    worker = start_worker(spec_for([toy_member(folder, text=True)], folder, task="classification"))
    try:
        assert worker.call("predict", ["some words"])["ok"]
        assert worker.call("explain", ["some words"])["error"]["code"] == "unsupported"
    finally:
        worker.stop()


def test_quantize_converts_torchscript_linears_and_other_combinations_fail_clearly(torch_worker):
    folder = short_folder()
    path = torchscript_artifact(folder, "q.pt")
    quantized = start_worker(spec_for([member(path, "torchscript")], folder, task="classification", quantize=True))
    try:
        assert quantized.ready, quantized.event
        rows = X[:5].tolist()
        np.testing.assert_allclose(
            quantized.call("predict", rows)["probabilities"],
            torch_worker.call("predict", rows)["probabilities"],
            atol=0.03,
        )
        # The int8 graph is frozen: its dropout can no longer be switched on.
        assert quantized.call("predict", rows, params={"uncertainty": {"samples": 3}})["error"]["code"] == "unsupported"
    finally:
        quantized.stop()
    compiled = start_worker(spec_for([member(path, "torchscript")], folder, task="classification", compile=True))
    assert compiled.event["event"] == "failed" and "TorchScript" in compiled.event["error"]
    skops_path = skops_artifact(folder, "m.skops", (X[:, 0] > 0).astype(int))
    sklearn = start_worker(spec_for([member(skops_path, "skops")], folder, task="classification", quantize=True))
    assert sklearn.event == {"event": "failed", "error": "quantize is not available for skops models"}


def test_compile_applies_to_exported_programs():
    folder = short_folder()
    module = DropoutNet(0.0).eval()
    path = folder / "model.pt2"
    program = torch.export.export(module, (torch.zeros(2, 4),), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, str(path))
    worker = start_worker(spec_for([member(path, "torch_export")], folder, task="regression", compile=True))
    try:
        assert worker.ready, (worker.event, worker.stderr()[-2000:])
        rows = X[:5].tolist()
        with torch.no_grad():
            expected = module(torch.tensor(rows, dtype=torch.float32)).double().numpy()
        for batch in (rows[:1], rows):  # both the one-row and the dynamic graph compiled at load
            answer = worker.call("predict", batch)
            np.testing.assert_allclose(answer["predictions"], expected[: len(batch)], rtol=1e-4, atol=1e-5)
            assert answer["compute_ms"] < 1000
    finally:
        worker.stop()
