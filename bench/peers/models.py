"""The two scikit-learn models every peer serves, as the platform's demo has them, written as
<folder>/<name>/model.joblib with <folder>/expected.json (a few rows and the model's own predict_proba).

bench_serving.py's --export-sklearn writes the same layout from the platform's registry, so either folder
serves the peers. Here the models come from demo.training, the code `manage.py seed_demo` trains
them with: every data set is generated from seed 7 and the estimators are seeded, so the same
scikit-learn gives the same models (tests/demo/test_training.py checks that two builds predict
alike). Nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .base import ROOT, log

# name -> number of input features
SKLEARN_MODELS = {"churn-logreg": 10, "fraud-forest": 20}
CHECK_ROWS = 3


def demo_models(folder: Path, *, fresh: bool = False) -> dict[str, Any]:
    """Builds the folder once per scikit-learn version (~30 s: the demo code trains all five demo models)
    and returns expected.json's contents."""
    import sklearn

    stamp = folder / "expected.json"
    if stamp.exists() and not fresh:
        expected = json.loads(stamp.read_text())
        if all(entry.get("sklearn") == sklearn.__version__ for entry in expected.values()):
            return expected
    sys.path.insert(0, str(ROOT))
    import skops.io as sio

    from demo.training import build_demo_models

    log("training the demo models (demo.training, seed 7, as seed_demo does)")
    with tempfile.TemporaryDirectory(prefix="peers-demo-") as scratch:
        built = {demo.name: demo for demo in build_demo_models(Path(scratch)) if demo.name in SKLEARN_MODELS}
        # Our own artifacts, just written: their types are trusted as they are.
        models = {name: sio.load(demo.path, trusted=sio.get_untrusted_types(file=demo.path))
                  for name, demo in built.items()}
    return write_models(folder, models)


def write_models(folder: Path, models: dict[str, Any]) -> dict[str, Any]:
    """Each fitted estimator as joblib (what the peers load) plus the answers they must give."""
    import joblib
    import numpy as np
    import sklearn

    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, model in models.items():
        (folder / name).mkdir(exist_ok=True)
        joblib.dump(model, folder / name / "model.joblib")
        rows = np.random.default_rng(7).uniform(-2, 2, (CHECK_ROWS, model.n_features_in_))
        with warnings.catch_warnings():
            # fitted on an array, then named (demo.training explains why): harmless here
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            expected[name] = {"n_features": int(model.n_features_in_), "rows": rows.tolist(),
                              "predict": model.predict(rows).tolist(), "proba": model.predict_proba(rows).tolist(),
                              "sklearn": sklearn.__version__}
    (folder / "expected.json").write_text(json.dumps(expected))
    return expected
