from django.test import TestCase

from tests.factories import key_client, make_model


class RegisteredModelApiTests(TestCase):
    def setUp(self):
        self.client = key_client("manage")

    def test_it_creates_a_model_and_reads_it_back(self):
        response = self.client.post("/api/v1/models/", {"name": "churn", "task": "classification",
                                                        "tags": {"team": "growth"}}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["name"], "churn")
        detail = self.client.get("/api/v1/models/churn/").json()
        self.assertEqual(detail["task"], "classification")
        self.assertEqual(detail["tags"], {"team": "growth"})
        self.assertEqual(detail["latest_version"], 0)

    def test_it_refuses_names_that_are_not_slugs(self):
        for bad in ["Churn", "has space", "../etc", "-leading", "a" * 65, "ünïcode"]:
            response = self.client.post("/api/v1/models/", {"name": bad, "task": "classification"}, format="json")
            self.assertEqual(response.status_code, 400, bad)
            body = response.json()["error"]
            self.assertEqual(body["code"], "validation_error")
            self.assertIn("name", body["message"])

    def test_a_duplicate_name_is_a_conflict(self):
        make_model("churn")
        response = self.client.post("/api/v1/models/", {"name": "churn"}, format="json")
        self.assertEqual(response.status_code, 409)
        self.assertEqual(response.json()["error"]["code"], "model_name_taken")

    def test_it_rejects_an_unknown_task(self):
        response = self.client.post("/api/v1/models/", {"name": "x", "task": "clustering"}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("task", response.json()["error"]["message"])

    def test_tags_must_map_to_strings(self):
        response = self.client.post("/api/v1/models/", {"name": "x", "tags": {"a": {"nested": 1}}}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("tags", response.json()["error"]["message"])

    def test_it_filters_by_task_and_tag(self):
        make_model("a", task="classification", tags={"team": "growth"})
        make_model("b", task="regression", tags={"team": "risk"})
        make_model("c", task="regression", tags={"team": "growth", "pii": "yes"})
        names = lambda query: [m["name"] for m in self.client.get(f"/api/v1/models/?{query}").json()["results"]]
        self.assertEqual(names("task=regression"), ["b", "c"])
        self.assertEqual(names("tag=team:growth"), ["a", "c"])
        self.assertEqual(names("tag=pii"), ["c"])
        self.assertEqual(names("task=regression&tag=team:growth"), ["c"])

    def test_bad_filter_values_are_refused(self):
        self.assertEqual(self.client.get("/api/v1/models/?task=nope").status_code, 400)
        response = self.client.get("/api/v1/models/?tag=a__contains")
        self.assertEqual(response.status_code, 400)
        self.assertIn("tag", response.json()["error"]["message"])

    def test_lists_are_paginated(self):
        for index in range(25):
            make_model(f"m{index:02d}")
        first = self.client.get("/api/v1/models/?page_size=10").json()
        self.assertEqual(first["count"], 25)
        self.assertEqual(len(first["results"]), 10)
        self.assertIsNotNone(first["next"])
        for size in ("1000", "0", "2.5", "x", "-1"):
            refused = self.client.get(f"/api/v1/models/?page_size={size}")
            self.assertEqual(refused.status_code, 400, size)
            self.assertIn("page_size: Must be an integer from 1 to 100.", refused.json()["error"]["message"])

    def test_patch_updates_only_given_fields(self):
        make_model("churn", description="old", tags={"a": "1"})
        response = self.client.patch("/api/v1/models/churn/", {"description": "new"}, format="json")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["description"], "new")
        self.assertEqual(response.json()["tags"], {"a": "1"})

    def test_delete_removes_the_model(self):
        make_model("churn")
        self.assertEqual(self.client.delete("/api/v1/models/churn/").status_code, 204)
        self.assertEqual(self.client.get("/api/v1/models/churn/").status_code, 404)
