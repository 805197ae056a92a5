"""`pip install ./client` in a fresh virtual environment: a working client and `sp`, without Django, torch,
NumPy or pandas (real dependencies, from the package index pip is configured with)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"django", "torch", "numpy", "pandas", "scikit-learn", "skops", "djangorestframework"}

pytestmark = pytest.mark.slow


def test_the_client_installs_alone_and_works_without_django_or_torch(tmp_path):
    # A copy: building writes build/ and *.egg-info next to the sources.
    source = shutil.copytree(ROOT / "client", tmp_path / "client",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", str(source)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]

    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                            check=True)
    installed = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert {"servingplatform-client", "httpx", "rich"} <= installed
    assert not installed & HEAVY, installed & HEAVY

    probe = ("import sys, servingplatform_client as sp; from servingplatform_client import cli; "
             "from importlib.resources import files; "
             "print(sp.__version__, files('servingplatform_client').joinpath('py.typed').is_file(), "
             "sorted({m.split('.')[0] for m in sys.modules} & {'django', 'torch', 'numpy', 'pandas'}))")
    probed = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    assert probed.stdout.strip().split(maxsplit=2) == ["0.1.0", "True", "[]"]

    sp = str(venv / "bin" / "sp")
    assert subprocess.run([sp, "--version"], capture_output=True, text=True).stdout.strip() == "sp 0.1.0"
    unreachable = subprocess.run([sp, "--url", "http://127.0.0.1:1", "models", "list"], capture_output=True,
                                 text=True)
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
