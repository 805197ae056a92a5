"""A model worker process: `python -m inference.runtime.worker`, with a `WorkerSpec` as JSON on stdin.

It loads the deployment's members, warms them up, binds its Unix socket, prints one `ready` (or
`failed`) JSON line on stdout and then serves the `protocol.py` ops until SIGTERM.

    model.py    members, ensembles, uncertainty and explanations (runs on the model thread)
    batcher.py  the dynamic batcher between the event loop and the model thread
    jobs.py     a request in the batcher: its states, and its answer from one pass or several
    pace.py     the model's time per pass (fixed + per row), which sizes the passes of long requests
    server.py   connections, frames, ops, stats, configure, draining
    process.py  the entry point: spec, load, socket, ready line, signals
"""
