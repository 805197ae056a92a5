#!/bin/sh
# Runs before every command of the image (ENTRYPOINT), then becomes that command (exec: it gets the signals).
set -eu

# prometheus_client's multiprocess mode: every process of this container writes its own files into one folder
# and /metrics sums them. Each container start gets a folder of its own under PROMETHEUS_MULTIPROC_DIR (created if
# missing): files of an earlier start (same pids after a restart) are never summed again, and nothing another
# container or process may still be writing is ever deleted, even where the base folder is shared.
base="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}"
mkdir -p "$base"
PROMETHEUS_MULTIPROC_DIR="$(mktemp -d "$base/$(hostname).XXXXXX")"
export PROMETHEUS_MULTIPROC_DIR

# Wait for the database, Redis and migrations named in WAIT_FOR (docker/wait_for.py).
if [ -n "${WAIT_FOR:-}" ]; then
    python /app/docker/wait_for.py
fi

exec "$@"
