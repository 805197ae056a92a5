"""The README's typed-columns examples run as written: train, save, register with an input example, deploy and
predict with a DataFrame for each flavor, against a live platform (web tier, model server, RQ worker)."""

import os
import re
import subprocess
import sys
import tempfile

import pytest

from tests.client.live import LivePlatformTestCase
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.slow
SECTION = "### Typed columns, input examples, and the XGBoost, LightGBM and ONNX flavors"


def section_examples() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n### ", start + len(SECTION))
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)
    assert len(blocks) == 4, "the section's python examples"
    return "\n".join(blocks)


def test_the_section_shows_every_flavor_with_an_input_example():
    code = section_examples()
    for flavor in ("sklearn", "xgboost", "lightgbm", "onnx"):
        assert f'flavor="{flavor}", input_example=' in code
    assert code.count("sp.predict(") == 5


class ReadmeExamplesTests(LivePlatformTestCase):
    def test_the_typed_examples_run_as_written(self):
        folder = self.enterContext(tempfile.TemporaryDirectory(prefix="sp-readme-"))
        env = {**os.environ, "SERVINGPLATFORM_URL": self.web.url, "SERVINGPLATFORM_API_KEY": self.manage_key}
        done = subprocess.run([sys.executable, "-c", section_examples()], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=600)
        self.assertEqual(done.returncode, 0, done.stderr[-4000:])
        answers = [line for line in done.stdout.splitlines() if line.startswith("{")]
        self.assertEqual(len(answers), 5, done.stdout)
        for answer in answers:
            self.assertIn("'probabilities': [[", answer)
