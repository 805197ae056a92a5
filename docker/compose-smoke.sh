#!/usr/bin/env bash
# Smoke test of docker/compose.yaml under podman-compose: the whole stack (PostgreSQL, Redis, migrate, web,
# model-server, jobs, scheduler) from a copy of the compose file with generated secrets, its web port on a free
# 127.0.0.1 port, started in the foreground as a user would (`docker/compose.sh up`); checks /health/ready, a
# prediction on the demo endpoint, that Ctrl-C (SIGINT to the foreground process group) stops every service with
# exit code 0 within its grace period, and that `down -v` removes everything it made.
#   docker/compose-smoke.sh      # about 2 minutes here; needs `make image` (and builds the stand-ins if missing)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_podman
SMOKE_TIMEOUT_S="${SMOKE_TIMEOUT_S:-420}"
project="sp-compose-smoke-$$"
work="$(mktemp -d)"
port="$(free_port)"
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
cp "$REPO_ROOT/docker/compose.yaml" "$work/compose.yaml"
sed -e "s|^SECRET_KEY=.*|SECRET_KEY=$(secret)$(secret)|" -e "s|^POSTGRES_PASSWORD=.*|POSTGRES_PASSWORD=$(secret)|" \
    -e "s|^REDIS_PASSWORD=.*|REDIS_PASSWORD=$(secret)|" -e "s|^WEB_PORT=.*|WEB_PORT=$port|" \
    "$REPO_ROOT/docker/.env.example" >"$work/.env"
export COMPOSE_FILE="$work/compose.yaml" COMPOSE_PROJECT_NAME="$project"
compose() { "$REPO_ROOT/docker/compose.sh" "$@"; }
base="http://127.0.0.1:$port"

cleanup() {
    status=$?
    if [ "$status" != 0 ]; then
        for service in migrate web model-server; do
            say "last lines of $service:"; podman logs --tail 25 "${project}_${service}_1" >&2 2>&1 || true
        done
    fi
    [ -z "${up_pid:-}" ] || kill -INT -- "-$up_pid" 2>/dev/null || true
    compose down -v -t 5 >/dev/null 2>&1 || true
    podman network rm "${project}_default" >/dev/null 2>&1 || true
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap "exit 143" INT TERM   # so that a timeout or Ctrl-C still cleans up
still_alive() {
    kill -0 "$up_pid" 2>/dev/null || fail "docker/compose.sh up exited while waiting for $1: $(tail -n 20 "$work/up.log")"
}

started=$SECONDS
# In a process group of its own with SIGINT at its default, as a terminal runs it (a background job of a script
# would start with SIGINT ignored, and bash cannot trap a signal ignored at its start).
python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])' \
    "$REPO_ROOT/docker/compose.sh" up >"$work/up.log" 2>&1 &
up_pid=$!
say "stack started as $project, web on $base"
wait_http "/health/ready" "$base/health/ready" >/dev/null
say "ready after $((SECONDS - started)) s"
# The demo endpoints exist once the migrate service has seeded them (web is ready as soon as migrations are in).
deadline=$((SECONDS + SMOKE_TIMEOUT_S))
until [ "$(podman inspect -f '{{.State.Status}}' "${project}_migrate_1")" = exited ]; do
    [ $SECONDS -lt $deadline ] || fail "migrate still running after ${SMOKE_TIMEOUT_S} s"
    still_alive "the migrate service"
    sleep 2
done
[ "$(podman inspect -f '{{.State.ExitCode}}' "${project}_migrate_1")" = 0 ] || fail "migrate did not exit 0"
say "migrated and seeded after $((SECONDS - started)) s"
key="$(podman exec "${project}_web_1" python manage.py create_api_key compose-smoke --scope predict 2>/dev/null | tail -n1)"
prediction="$(wait_http "a prediction on churn-logreg" -X POST "$base/api/v1/predict/churn-logreg" -H "X-API-Key: $key" \
    -H 'Content-Type: application/json' -d '{"inputs": [[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]]}')"
python3 -c 'import json, sys; assert json.loads(sys.argv[1]).get("predictions")' "$prediction" \
    || fail "no predictions in $prediction"
say "prediction after $((SECONDS - started)) s: $prediction"

stop_started=$SECONDS
kill -INT -- "-$up_pid"   # what Ctrl-C does: SIGINT to every process of the terminal's foreground group
wait "$up_pid" || fail "docker/compose.sh up exited with $? on Ctrl-C"
for service in postgres redis web model-server jobs scheduler; do
    code="$(podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "${project}_${service}_1")"
    [ "$code" = "exited 0" ] || fail "$service after stop: $code"
done
say "Ctrl-C stopped every service with exit code 0 in $((SECONDS - stop_started)) s"
compose down -v >/dev/null 2>&1
left="$(podman ps -a -q --filter "label=io.podman.compose.project=$project"; podman volume ls -q | grep "^${project}_" || true)"
[ -z "$left" ] || fail "left after down -v: $left"
say "compose smoke passed in $((SECONDS - started)) s"
