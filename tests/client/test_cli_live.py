"""`sp` in a subprocess against a live platform: each command's --json answer and human output, and the exit
code that says what failed."""

import csv
import json
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from tests.client.live import LivePlatformTestCase, churn_data

pytestmark = pytest.mark.slow


class NotAllowed(LogisticRegression):
    """A type outside the server's skops allow-list: its validation fails."""


class CommandLineTests(LivePlatformTestCase):
    def setUp(self):
        super().setUp()
        self.folder = Path(self.enterContext(__import__("tempfile").TemporaryDirectory(prefix="sp-cli-")))
        self.x, y = churn_data()
        self.model = LogisticRegression(max_iter=500).fit(self.x, y)
        sio.dump(self.model, self.folder / "model.skops")
        sio.dump(NotAllowed(max_iter=200).fit(self.x, y), self.folder / "sneaky.skops")
        self.rows = self.x[:6]
        (self.folder / "rows.json").write_text(json.dumps({"inputs": self.rows.tolist()}))
        with open(self.folder / "rows.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["f0", "f1", "f2", "f3"])
            writer.writerows(self.rows.tolist())

    def sp_json(self, *args: str, expect: int = 0, **kwargs):
        done = self.run_sp(*args, "--json", **kwargs)
        self.assertEqual(done.returncode, expect, f"sp {' '.join(args)}: {done.stderr}\n{done.stdout}")
        return json.loads(done.stdout)

    def test_register_deploy_predict_jobs_and_undeploy(self):
        path = str(self.folder / "model.skops")
        version = self.sp_json("models", "register", path, "--name", "churn", "--task", "classification",
                               "--metrics", '{"accuracy": 0.9}',
                               "--tags", '{"team": "growth"}', "--alias", "production", "--wait")
        self.assertEqual((version["version"], version["status"], version["flavor"]), (1, "ready", "sklearn"))
        self.assertEqual((version["metrics"], version["tags"], version["aliases"]),
                         ({"accuracy": 0.9}, {"team": "growth"}, ["production"]))

        # Human output: the version line, then its number last (for `V=$(sp models register ... | tail -1)`),
        # and progress on stderr when asked for.
        human = self.run_sp("models", "register", path, "--name", "churn", "--wait", "--progress")
        self.assertEqual(human.returncode, 0, human.stderr)
        self.assertEqual(human.stdout.strip().splitlines()[-1], "2")
        self.assertIn("churn v2: ready", human.stdout)
        self.assertIn("uploading model.skops", human.stderr)
        self.assertIn("validating churn v2: ready", human.stderr)
        listed = self.run_sp("models", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertRegex(listed.stdout, r"churn\s+classification\s+2\s+production->v1")
        self.assertEqual([m["name"] for m in self.sp_json("models", "list")], ["churn"])

        deployment = self.sp_json("deploy", "churn", "--model", "churn", "--alias", "production", "--wait",
                                  "--max-batch-size", "8", "--set", "batch_timeout_ms=1")
        self.assertEqual((deployment["status"], deployment["version"], deployment["max_batch_size"],
                          deployment["batch_timeout_ms"]), ("ready", 1, 8, 1.0))

        expected = self.model.predict(self.rows).tolist()
        answer = self.sp_json("predict", "churn", "--input", str(self.folder / "rows.json"), key=self.predict_key)
        self.assertEqual(answer["predictions"], expected)
        by_csv = self.sp_json("predict", "churn", "--input", str(self.folder / "rows.csv"), "--rows",
                              key=self.predict_key)
        self.assertEqual(by_csv["predictions"], expected)
        shown = self.run_sp("predict", "churn", "--input", str(self.folder / "rows.json"), key=self.predict_key)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn("churn -> churn v1", shown.stdout)
        table = [line.split() for line in shown.stdout.splitlines()[2:]]
        self.assertEqual([int(row[1]) for row in table], expected)

        job = self.sp_json("jobs", "submit", "churn", "--input", str(self.folder / "rows.json"), "--wait",
                           key=self.predict_key)
        self.assertEqual((job["status"], job["result"]["predictions"]), ("succeeded", expected))
        output = self.folder / "predictions.csv"
        batch = self.sp_json("jobs", "batch", str(self.folder / "rows.csv"), "--endpoint", "churn", "--output",
                             str(output), key=self.predict_key)
        self.assertEqual((batch["status"], batch["rows_done"]), ("succeeded", 6))
        with open(output, newline="") as handle:
            self.assertEqual([int(row["prediction"]) for row in csv.DictReader(handle)], expected)
        shown_batch = self.sp_json("jobs", "batch-show", batch["id"], key=self.predict_key)
        self.assertEqual(shown_batch["rows_succeeded"], 6)

        self.assertEqual(self.sp_json("undeploy", "churn")["status"], "stopped")

    def test_exit_codes_say_what_failed(self):
        rows = str(self.folder / "rows.json")
        gone = self.run_sp("predict", "nope", "--input", rows, "--json")
        self.assertEqual(gone.returncode, 5)
        self.assertEqual(json.loads(gone.stdout)["error"]["code"], "endpoint_not_found")
        self.assertIn("sp: error: 404 endpoint_not_found", gone.stderr)

        self.assertEqual(self.run_sp("models", "list", key="AbCdEfGh.wrong").returncode, 4)  # 401
        self.assertEqual(self.run_sp("deploy", "x", "--model", "churn", "--version", "1",
                                     key=self.predict_key).returncode, 4)  # 403: a predict key cannot deploy
        self.assertEqual(self.run_sp("models", "show", "nope").returncode, 5)
        self.assertEqual(self.run_sp("--url", "http://127.0.0.1:1", "models", "list").returncode, 3)

        for usage in (["deploy", "churn", "--model", "churn"],  # neither --version nor --alias
                      ["predict", "churn", "--input", str(self.folder / "missing.json")],
                      ["models", "register", str(self.folder / "model.skops"), "--name", "c", "--tags", "{bad"]):
            done = self.run_sp(*usage)
            self.assertEqual(done.returncode, 2, f"{usage}: {done.stderr}")

        refused = self.run_sp("models", "register", str(self.folder / "model.skops"), "--name", "Bad Name!",
                              "--json")
        self.assertEqual(refused.returncode, 6)  # 400: the model's name
        self.assertEqual(json.loads(refused.stdout)["error"]["code"], "validation_error")
        self.assertIn("name", json.loads(refused.stdout)["error"]["message"])

        failed = self.run_sp("models", "register", str(self.folder / "sneaky.skops"), "--name", "sneaky", "--wait",
                             "--json")
        self.assertEqual(failed.returncode, 8)
        error = json.loads(failed.stdout)["error"]
        self.assertEqual((error["code"], error["details"]["status"]), ("validation_failed", "failed"))
        self.assertIn("NotAllowed", error["message"])
