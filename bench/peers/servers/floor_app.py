"""The floors: a raw ASGI app (no framework) that parses the platform's request body,
{"inputs": [[x1, ..., xn]]}, and answers

- FLOOR_PREDICT unset: a fixed JSON (what the HTTP layer and a JSON parse cost: the HTTP floor);
- FLOOR_PREDICT=1: the model's predict_proba on that one row, in-process, no batching (the in-process floor).

Run by bench/peers (floors.py) in its own venv under uvicorn with httptools and uvloop, 2 workers:
    uvicorn floor_app:app --app-dir bench/peers/servers --workers 2 --http httptools --loop uvloop ...
"""

import json
import os
from pathlib import Path

FIXED = b'{"predictions":[0],"probabilities":[[0.5,0.5]]}'
JSON_HEADERS = [(b"content-type", b"application/json")]
PREDICT = os.environ.get("FLOOR_PREDICT") == "1"
MODELS = {}

if PREDICT:
    import joblib
    import numpy as np
    for folder in Path(os.environ["FLOOR_MODELS"]).iterdir():
        if (folder / "model.joblib").is_file():
            MODELS[folder.name] = joblib.load(folder / "model.joblib")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    parts = scope["path"].strip("/").split("/")  # predict/<model> or ready/<model>
    name = parts[1] if len(parts) == 2 else ""
    if PREDICT and name not in MODELS:
        return await answer(send, 404, b'{"error":"unknown model"}')
    if parts[0] == "ready":
        return await answer(send, 200, b"{}")
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    try:
        rows = json.loads(body)["inputs"]
        if len(rows) != 1 or not all(isinstance(x, (int, float)) for x in rows[0]):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return await answer(send, 400, b'{"error":"inputs must hold one row of numbers"}')
    if not PREDICT:
        return await answer(send, 200, FIXED)
    model = MODELS[name]
    proba = model.predict_proba(np.asarray(rows, dtype=np.float64))
    labels = model.classes_[proba.argmax(axis=1)]
    return await answer(send, 200, json.dumps({"predictions": labels.tolist(),
                                               "probabilities": proba.tolist()}).encode())


async def answer(send, status, payload):
    await send({"type": "http.response.start", "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
