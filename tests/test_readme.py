"""Every `curl` example of README.md runs as written against the platform as `make serve` runs it
(scripts/serve.py on a free port with its own VAR_DIR: its private Redis, SQLite, the demo models seeded).

The examples run in the README's order, each after the platform has settled (no deployment loading, no version
validating, no job queued or running), as a person reading along would run them. Each must answer 2xx, or a
status its comment states (`# cancels a queued job (409 once it runs)`). What the examples leave to the reader is
filled in the way the reader would: `$KEY` and `$P` by the README's own assignments, `localhost:8000` by the
server's address, `<job_id>` (any `<name>`) by the latest answer's `name`, `"request_id": "..."` (any `"name":
"..."`) by the latest answer's `name` or the account the test made (FILLS), and the files the examples upload
(`model.skops`, `rows.csv`) by FILES. A new example that needs another file or account adds it there.
"""

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.inference.live import free_port, wait_for
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.slow

README = REPO_ROOT / "README.md"
SHELL_FENCES = ("bash", "sh", "shell", "console", "")
# Accounts the examples name, and what the reader would type for their "...".
USER, PASSWORD = "ana", "ana-readme-pass-1"
FILLS = {"username": USER, "password": PASSWORD}
STATUS_IN_COMMENT = re.compile(r"(?<![\d.])([45]\d\d)(?![\d.])")
PLACEHOLDER = re.compile(r"<([a-z_]+)>")
ELLIPSIS_VALUE = re.compile(r'"(\w+)": "\.\.\."')
SETTLE_S = 180
KNOB_SETTLE_S = 1.5  # > the model server's tick (MODEL_SERVER_POLL_S, 0.5 s) plus the web's routes recheck
CHANGES_DEPLOYMENT = re.compile(r"-X (PATCH|DELETE)\b.*/api/v1/deployments/|/api/v1/deployments/ -d", re.S)


@dataclass
class Example:
    line: int  # where it starts in README.md
    command: str  # shell text: a curl command or a variable assignment, continuation lines joined
    comment: str = ""  # its trailing comment and the comment lines right after it
    statuses: set[int] = field(default_factory=set)  # what its comment says it may answer besides 2xx


def shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced shell block and each indented code block."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        line = lines[index]
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            if fence.group(1) in SHELL_FENCES:
                blocks.append((index + 2, lines[index + 1:end]))
            index = end + 1
        elif line.startswith("    ") and (index == 0 or not lines[index - 1].strip()):
            end = index
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            blocks.append((index + 1, [text_line[4:] for text_line in lines[index:end]]))
            index = end
        else:
            index += 1
    return blocks


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # an open quote: a JSON body goes on over the next lines
        return False
    return True


def examples(text: str) -> list[Example]:
    """The curl commands and the variable assignments of the shell blocks, in order."""
    found: list[Example] = []
    for first, lines in shell_blocks(text):
        index = 0
        while index < len(lines):
            start, command = index, lines[index]
            while not _complete(command) and index + 1 < len(lines):
                index += 1
                command += "\n" + lines[index]
            index += 1
            stripped = command.strip()
            if stripped.startswith("#") and found and found[-1].line >= first:
                found[-1].comment += "\n" + stripped  # what the previous example answers
                continue
            if re.match(r"^(curl\s|[A-Z_]+=)", stripped):
                comment = stripped.split("  #", 1)[1] if "  #" in stripped else ""
                found.append(Example(first + start, stripped, comment))
    for example in found:
        example.statuses = {int(code) for code in STATUS_IN_COMMENT.findall(example.comment)}
    return found


# --- the platform, as `make serve` runs it --------------------------------------------------------

class Platform:
    def __init__(self) -> None:
        self.var = Path(tempfile.mkdtemp(prefix="sp-readme-"))
        self.port = free_port()
        self.log = open(self.var / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.env = {**{k: v for k, v in os.environ.items()
                       if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "MODEL_STORE_DIR",
                                    "MODEL_SERVER_DIR", "BATCH_DIR", "STATIC_ROOT", "PROMETHEUS_MULTIPROC_DIR")},
                    "VAR_DIR": str(self.var), "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_WORKERS": "1",
                    "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "scripts/serve.py"], cwd=REPO_ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def tail(self) -> str:
        return (self.var / "serve.log").read_text()[-4000:]

    def manage(self, *args: str, **env: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env={**self.env, **env},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"scripts/serve.py exited: {self.tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/health/ready", timeout=5) as answer:
                return answer.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def busy(self) -> list[str]:
        """What is still moving: deployments loading, versions validating, jobs queued or running. Read from the
        platform's database (SQLite under VAR_DIR), so the polling spends none of the key's rate limit."""
        queries = {
            "deployment": "SELECT endpoint FROM inference_deployment WHERE status IN ('pending', 'loading') "
                          "OR status_reason LIKE 'rolling out%'",
            "version": "SELECT id FROM registry_modelversion WHERE status IN ('pending', 'validating')",
            "job": "SELECT id FROM inference_inferencejob WHERE status IN ('queued', 'running')",
            "batch job": "SELECT id FROM inference_batchjob WHERE status IN ('queued', 'running')",
        }
        with closing(sqlite3.connect(f"file:{self.var / 'servingplatform.sqlite3'}?mode=ro", uri=True,
                                     timeout=30)) as database:
            return [f"{kind} {row[0]}" for kind, query in queries.items() for row in database.execute(query)]

    def settle(self) -> None:
        wait_for(lambda: not self.busy(), timeout=SETTLE_S, interval=0.3, message="the platform to settle")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.var, ignore_errors=True)


@pytest.fixture(scope="module")
def platform():
    served = Platform()
    try:
        wait_for(served.ready, timeout=900, interval=1.0, message="scripts/serve.py to serve (demo models seeded)")
        served.manage("createsuperuser", "--noinput", "--username", USER, "--email", "ana@example.com",
                      DJANGO_SUPERUSER_PASSWORD=PASSWORD)
        yield served
    finally:
        served.stop()


# --- files the examples upload ------------------------------------------------------------------

def model_skops(path: Path) -> None:
    """A scikit-learn model on 10 features, as the README's churn examples send."""
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10))
    sio.dump(LogisticRegression(max_iter=500).fit(x, (x[:, 0] > 0).astype(int)), path)


def rows_csv(path: Path) -> None:
    """Rows for churn-logreg's batch job: a header f0..f9, as the README says."""
    lines = [",".join(f"f{i}" for i in range(10))] + [",".join(str((r + c) / 10) for c in range(10)) for r in range(25)]
    path.write_text("\n".join(lines) + "\n")


def churn_skops(path: Path) -> None:
    """A scikit-learn Pipeline fitted on a DataFrame with a string column and missing values, as the typed-columns
    section's churn-df."""
    import numpy as np
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = churn_frame(200)
    encode = ColumnTransformer([("country", OneHotEncoder(handle_unknown="ignore"), ["country"])],
                               remainder="passthrough")
    model = Pipeline([("encode", encode), ("trees", HistGradientBoostingClassifier(max_iter=20))])
    sio.dump(model.fit(frame, (frame["age"] > 40).astype(int)), path)
    assert np.isnan(frame["income"]).any() and isinstance(frame, pd.DataFrame)


def churn_rows_csv(path: Path) -> None:
    """churn-df's input example: a header, strings, and an empty (missing) income."""
    churn_frame(5).to_csv(path, index=False)


def churn_frame(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    income = rng.normal(40_000, 9_000, size=rows)
    income[::4] = np.nan
    return pd.DataFrame({"country": rng.choice(["fr", "de", "es"], size=rows),
                         "age": rng.integers(18, 80, size=rows).astype(float), "income": income})


FILES = {"model.skops": model_skops, "rows.csv": rows_csv, "churn.skops": churn_skops,
         "churn-rows.csv": churn_rows_csv}


# --- running them -------------------------------------------------------------------------------

class Reader:
    """Runs the examples one after another in a scratch folder, as a reader's shell would."""

    def __init__(self, platform: Platform, folder: Path) -> None:
        self.platform, self.folder = platform, folder
        self.variables: dict[str, str] = {}
        self.answers: dict[str, str] = {}  # the latest value of each field of the JSON answers so far
        for name, make in FILES.items():
            make(folder / name)
        # The README's commands start with .venv/bin/python manage.py, from the repository's root.
        (folder / ".venv").symlink_to(REPO_ROOT / ".venv")
        (folder / "manage.py").symlink_to(REPO_ROOT / "manage.py")

    def shell(self, script: str) -> subprocess.CompletedProcess:
        env = {**self.platform.env, **self.variables}
        return subprocess.run(["bash", "-c", script], cwd=self.folder, env=env, capture_output=True, text=True,
                              timeout=300)

    def fill(self, command: str) -> str:
        command = command.replace("localhost:8000", f"localhost:{self.platform.port}")
        command = PLACEHOLDER.sub(lambda m: self.value_of(m.group(1)), command)
        return ELLIPSIS_VALUE.sub(lambda m: f'"{m.group(1)}": "{self.value_of(m.group(1))}"', command)

    def value_of(self, name: str) -> str:
        value = FILLS.get(name) or self.answers.get(name)
        assert value, f"nothing to fill '{name}' with: no earlier answer had it (add it to FILLS?)"
        return value

    def assign(self, example: Example) -> None:
        name = example.command.split("=", 1)[0]
        done = self.shell(f'{example.command}\nprintf %s "${name}"')
        assert done.returncode == 0 and done.stdout, f"README.md:{example.line}: {done.stderr[-2000:]}"
        self.variables[name] = done.stdout

    def curl(self, example: Example) -> tuple[int, str]:
        # -w writes the status to stderr, so the body (or -o's file) is what the example writes.
        command = self.fill(example.command).replace("curl ", "curl -sS -w '%{stderr}HTTP %{http_code}' ", 1)
        done = self.shell(command)
        match = re.search(r"HTTP (\d{3})$", done.stderr)
        assert done.returncode == 0 and match, f"curl failed: {done.stderr[-2000:]}"
        self.remember(done.stdout)
        return int(match.group(1)), done.stdout

    def remember(self, body: str) -> None:
        try:
            answer = json.loads(body)
        except ValueError:
            return
        if isinstance(answer, dict):
            self.answers.update({k: str(v) for k, v in answer.items() if isinstance(v, (str, int))})


def test_the_readme_has_curl_examples_and_their_stated_statuses_are_read():
    found = examples(README.read_text())
    curls = [example for example in found if example.command.startswith("curl")]
    assert len(curls) > 30
    assert {example.command.split("=", 1)[0] for example in found if not example.command.startswith("curl")} >= {
        "KEY", "P"}
    cancel = next(example for example in curls if "DELETE" in example.command and "/jobs/<job_id>" in example.command)
    assert cancel.statuses == {409}
    multi_line = next(example for example in curls if "/api/v1/experiments/ -d" in example.command)
    assert '"variants"' in multi_line.command  # a JSON body over several lines is one command


def test_every_curl_example_answers_as_the_readme_says(platform, tmp_path):
    reader = Reader(platform, tmp_path)
    failures = []
    for example in examples(README.read_text()):
        if not example.command.startswith("curl"):
            reader.assign(example)
            continue
        platform.settle()
        try:
            status, body = reader.curl(example)
        except AssertionError as exc:  # curl failed, or a placeholder had nothing to fill it
            failures.append(f"README.md:{example.line}: {exc}")
            continue
        if not (200 <= status < 300 or status in example.statuses):
            failures.append(f"README.md:{example.line}: {status} {body[:300]}\n    {example.command[:200]}")
        if CHANGES_DEPLOYMENT.search(example.command):
            # A reader's pace: a deployment's knobs reach the routing table on the model server's next tick,
            # and every web process within its recheck (what the README's next example relies on).
            time.sleep(KNOB_SETTLE_S)
    assert failures == [], "\n".join(failures)
