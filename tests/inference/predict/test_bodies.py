"""Prediction bodies are checked field by field before anything is looked up or called.

A key the route does not know is refused rather than ignored: `"parameter": {"cache": false}` answering 200
from the cache, or `"version": "prod"` read as an alias, is the kind of silent misreading these prevent.
"""

import pytest
from django.test import TestCase
from rest_framework.exceptions import ValidationError

from inference.predict.bodies import (
    BATCH_ITEM_FIELDS,
    EXPLAIN_PARAMETERS,
    TIMEOUT_MS_MESSAGE,
    parameter_errors,
    predict_request,
    universal_ref,
)
from registry.services import model_alias_set
from tests.factories import key_client, make_model
from tests.inference.live import toy_version

ROW = [1.0, 2.0, 3.0]


def refusal(call) -> dict:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.detail


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"inputs": [ROW], "parameter": {"cache": False}}, "parameter", "did you mean 'parameters'"),
    ({"inputs": [ROW], "endpoint": "elsewhere"}, "endpoint", "Unknown field"),
    ({"inputs": [ROW], "subject_id": {"user": 1}}, "subject_id", "string"),
    ({"inputs": [ROW], "subject_id": 7}, "subject_id", "string"),
    ({"inputs": [ROW], "request_id": 7}, "request_id", "string"),
    ({"inputs": [ROW], "parameters": []}, "parameters", "JSON object"),
])
def test_a_body_field_the_route_does_not_take_is_refused_by_name(body, field, words):
    detail = refusal(lambda: predict_request("e", body, subject=None, default_id=None))
    assert list(detail) == [field]
    assert words in str(detail[field][0])


@pytest.mark.parametrize(("params", "expected"), [
    ({"cache": "maybe"}, {"cache": ["Must be true or false."]}),
    ({"cache": 0}, {"cache": ["Must be true or false."]}),
    ({"uncertainty": 5}, {"uncertainty": {"samples": ["Must be an integer from 2 to 100."]}}),
    ({"uncertainty": {"samples": True}}, {"uncertainty": {"samples": ["Must be an integer from 2 to 100."]}}),
    *[({"timeout_ms": bad}, {"timeout_ms": [TIMEOUT_MS_MESSAGE]}) for bad in (0, -5, 1.5, "100", True, None, [100])],
])
def test_parameters_are_typed(params, expected):
    assert parameter_errors(params) == expected
    detail = refusal(lambda: predict_request("e", {"inputs": [ROW], "parameters": params}, subject=None,
                                             default_id=None))
    assert set(detail) == {"parameters"}


def test_a_request_may_set_a_deadline_of_its_own_on_predictions_and_explanations():
    assert parameter_errors({"timeout_ms": 250, "cache": False}) == {}
    assert parameter_errors({"timeout_ms": 10**9}) == {}  # clamped to the deployment's when called, not refused
    assert parameter_errors({"timeout_ms": 250, "baseline": ROW}, EXPLAIN_PARAMETERS) == {}


def test_each_route_names_its_own_parameters():
    assert "did you mean 'cache'" in parameter_errors({"cach": False})["cach"][0]
    # An explanation takes a baseline and nothing a prediction does.
    assert parameter_errors({"baseline": ROW}, EXPLAIN_PARAMETERS) == {}
    assert "Unknown field" in parameter_errors({"cache": False}, EXPLAIN_PARAMETERS)["cache"][0]
    assert "Unknown field" in parameter_errors({"baseline": ROW})["baseline"][0]


def test_a_well_formed_body_keeps_what_it_says():
    request = predict_request("e", {"inputs": [ROW], "request_id": "r1", "subject_id": "u1",
                                    "parameters": {"cache": False, "uncertainty": {"samples": 5}}},
                              subject=None, default_id="fallback")
    assert (request.endpoint, request.inputs, request.request_id, request.subject_id) == ("e", [ROW], "r1", "u1")
    assert request.params == {"cache": False, "uncertainty": {"samples": 5}}
    header_wins = predict_request("e", {"inputs": [ROW], "subject_id": "u1"}, subject="u2", default_id="d")
    assert (header_wins.subject_id, header_wins.request_id) == ("u2", "d")


@pytest.mark.parametrize(("body", "field"), [
    ({"model": 5}, "model"),
    ({"model": ""}, "model"),
    ({}, "model"),
    ({"model": "m", "version": "production"}, "version"),
    ({"model": "m", "version": True}, "version"),
    ({"model": "m", "version": 1.5}, "version"),
    ({"model": "m", "version": 0}, "version"),
    ({"model": "m", "alias": ["production"]}, "alias"),
    ({"model": "m", "alias": ""}, "alias"),
    ({"model": "m", "version": 1, "alias": "production"}, "version"),
])
def test_a_universal_body_names_a_model_and_one_version_or_alias(body, field):
    assert list(refusal(lambda: universal_ref(body))) == [field]


def test_a_universal_reference_is_a_number_or_an_alias():
    assert universal_ref({"model": "m"}) == ("m", "production")
    assert universal_ref({"model": "m", "version": 3}) == ("m", 3)
    assert universal_ref({"model": "m", "version": "3"}) == ("m", 3)
    assert universal_ref({"model": "m", "alias": "staging"}) == ("m", "staging")


def test_a_batch_item_may_name_an_endpoint_or_a_model():
    for key in ("endpoint", "model", "version", "alias"):
        item = predict_request("e", {"inputs": [ROW], key: "x"}, subject=None, default_id=None,
                               fields=BATCH_ITEM_FIELDS)
        assert item.inputs == [ROW]
    detail = refusal(lambda: predict_request("e", {"inputs": [ROW], "endpoints": "x"}, subject=None, default_id=None,
                                             fields=BATCH_ITEM_FIELDS))
    assert detail["endpoints"][0] == "Unknown field; did you mean 'endpoint'?"


class PredictRoutesRefuseBeforeLookingAnythingUpTests(TestCase):
    """Over the DRF views: nothing serves these endpoints, so a 400 proves the body was checked first."""

    def setUp(self):
        self.client = key_client("predict")

    def post(self, path: str, body):
        return self.client.post(path, body, format="json")

    def assert_refused(self, response, field: str, words: str = "") -> None:
        self.assertEqual(response.status_code, 400, response.content)
        error = response.json()["error"]
        self.assertTrue(error["message"].startswith(field), error["message"])
        self.assertIn(words, error["message"])

    def test_by_endpoint_and_explain(self):
        self.assert_refused(self.post("/api/v1/predict/nowhere", {"inputs": [ROW], "instances": [ROW]}),
                            "instances", "Unknown field")
        self.assert_refused(self.post("/api/v1/predict/nowhere", {"inputs": [ROW], "parameters": {"cache": "no"}}),
                            "parameters.cache", "true or false")
        self.assert_refused(self.post("/api/v1/predict/nowhere/explain", {"inputs": [ROW], "parameters": {
            "basline": ROW}}), "parameters.basline", "did you mean 'baseline'")
        # Unchecked bodies still reach the lookup: the endpoint's own 404.
        self.assertEqual(self.post("/api/v1/predict/nowhere", {"inputs": [ROW]}).status_code, 404)

    def test_universal(self):
        model = make_model("scorer", task="regression")
        toy_version(model)
        model_alias_set(model=model, alias="production", version_number=1)
        self.assert_refused(self.post("/api/v1/predict", {"model": "scorer", "version": "production",
                                                          "inputs": [ROW]}), "version", "version number")
        self.assert_refused(self.post("/api/v1/predict", {"model": "scorer", "endpoint": "x", "inputs": [ROW]}),
                            "endpoint", "Unknown field")
        self.assert_refused(self.post("/api/v1/predict", {"model": 5, "inputs": [ROW]}), "model", "string")
        unserved = self.post("/api/v1/predict", {"model": "scorer", "version": "1", "inputs": [ROW]})
        self.assertEqual(unserved.status_code, 404)
        self.assertIn("deploy", unserved.json()["error"]["message"])

    def test_batch_items_each_carry_their_own_refusal(self):
        response = self.post("/api/v1/predict/batch", {"requests": [
            {"endpoint": 3, "inputs": [ROW]},
            {"endpoint": "nowhere", "model": "scorer", "inputs": [ROW]},
            {"endpoint": "nowhere", "inputs": [ROW], "input": [ROW]},
            {"endpoint": "nowhere", "inputs": [ROW]},
        ]})
        self.assertEqual(response.status_code, 200, response.content)
        results = response.json()["results"]
        self.assertEqual([result["status"] for result in results], [400, 400, 400, 404])
        messages = [result["error"]["message"] for result in results[:3]]
        self.assertTrue(messages[0].startswith("endpoint: Must be an endpoint's name"), messages[0])
        self.assertIn("either 'endpoint' or 'model'", messages[1])
        self.assertTrue(messages[2].startswith("input: Unknown field; did you mean 'inputs'?"), messages[2])
        self.assert_refused(self.post("/api/v1/predict/batch", {"requests": [{"endpoint": "x", "inputs": [ROW]}],
                                                                "parallel": True}), "parallel", "Unknown field")
