#!/usr/bin/env bash
# Smoke test of the image: runs it as one host would (every role in one container, its default CMD) against
# this machine's PostgreSQL and Redis (--network=host), with docker/.env.example's production settings
# (SECURE_SSL_REDIRECT=1 behind a TLS proxy), and checks what a new user would:
#   migrate + seed_demo run at start, /health/ready answers 200, a prediction on the demo endpoint succeeds with a
#   key from `manage.py create_api_key`, /metrics sums every web worker, the image's HEALTHCHECK passes, and
#   SIGTERM stops the container cleanly (exit code 0) within its grace period.
#
#   docker/smoke.sh              # uses $APP_IMAGE (default localhost/servingplatform:latest; `make image` builds it)
#
# Its own database (SMOKE_DB, default sp_smoke: created and dropped here, never the tests' `test`) and its own Redis
# database number (SMOKE_REDIS_DB, default 11: flushed here, so no other user may share it). Bounded in time:
# SMOKE_TIMEOUT_S (default 420) for the platform to become ready and serve.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_podman

PG_HOST="${PG_HOST:-127.0.0.1}" PG_PORT="${PG_PORT:-5432}" PG_USER="${PG_USER:-postgres}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}" REDIS_PORT="${REDIS_PORT:-6379}"
SMOKE_DB="${SMOKE_DB:-sp_smoke}"
SMOKE_REDIS_DB="${SMOKE_REDIS_DB:-11}"
SMOKE_TIMEOUT_S="${SMOKE_TIMEOUT_S:-420}"
[ "$SMOKE_DB" != test ] || { say "SMOKE_DB must not be the tests' database"; exit 2; }
image_exists "$APP_IMAGE" || { say "$APP_IMAGE is missing: run 'make image' first"; exit 2; }

port="$(free_port)"
name="sp-smoke-$$"
base="http://127.0.0.1:$port"
psql_args=(-h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER")

cleanup() {
    status=$?
    if podman container exists "$name"; then
        [ "$status" = 0 ] || { say "last lines of the container's log:"; podman logs --tail 60 "$name" >&2 || true; }
        podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
    fi
    dropdb "${psql_args[@]}" --if-exists "$SMOKE_DB" 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
trap "exit 143" INT TERM   # so that a timeout or Ctrl-C still cleans up

still_alive() {
    [ "$(podman inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || fail "the container stopped while waiting for $1"
}

say "fresh database $SMOKE_DB and Redis database $SMOKE_REDIS_DB"
dropdb "${psql_args[@]}" --if-exists "$SMOKE_DB"
createdb "${psql_args[@]}" "$SMOKE_DB"
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$SMOKE_REDIS_DB" flushdb >/dev/null

started=$SECONDS
say "starting $APP_IMAGE as $name on $base"
podman run -d --name "$name" --network=host --stop-timeout 30 \
    --env-file "$REPO_ROOT/docker/.env.example" \
    -e SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    -e DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$SMOKE_DB" \
    -e REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT/$SMOKE_REDIS_DB" \
    -e HOST=127.0.0.1 -e PORT="$port" -e WEB_WORKERS=2 -e ALLOWED_HOSTS=127.0.0.1,localhost \
    "$APP_IMAGE" >/dev/null

ready="$(wait_http "/health/ready" "$base/health/ready")"
say "ready after $((SECONDS - started)) s: $ready"
curl -s -o /dev/null -w '%{http_code}' "$base/health/ready" | grep -qx 301 \
    || fail "plain HTTP was not redirected to HTTPS: SECURE_SSL_REDIRECT from .env.example is not in force"

key="$(podman exec "$name" python manage.py create_api_key smoke --scope predict 2>/dev/null | tail -n1)"
[ -n "$key" ] || fail "create_api_key printed no key"
body='{"inputs": [[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]]}'
prediction="$(wait_http "a prediction on churn-logreg" -X POST "$base/api/v1/predict/churn-logreg" \
    -H "X-API-Key: $key" -H 'Content-Type: application/json' -d "$body")"
say "prediction after $((SECONDS - started)) s: $prediction"
python3 -c 'import json, sys; body = json.loads(sys.argv[1]); assert body.get("predictions"), body' "$prediction" \
    || fail "the prediction answer has no predictions"

# Two web workers answer; the counter must include the prediction whichever of them serves /metrics.
manage_key="$(podman exec "$name" python manage.py create_api_key smoke-metrics --scope manage 2>/dev/null | tail -n1)"
metrics="$(wait_http "/metrics" "$base/metrics" -H "X-API-Key: $manage_key")"
grep -E '^sp_prediction_requests_total\{.*endpoint="churn-logreg".*outcome="ok".*\} [1-9]' <<<"$metrics" >/dev/null \
    || fail "/metrics does not count the prediction: $(grep sp_prediction_requests <<<"$metrics" | head -5)"
podman exec "$name" sh -c 'ls -d /tmp/prometheus/*/ | wc -l' | grep -qx 1 \
    || fail "expected exactly one Prometheus folder for this container start"

podman healthcheck run "$name" 2>/dev/null || fail "the image's HEALTHCHECK does not pass"
say "the image's HEALTHCHECK passes"

stop_started=$SECONDS
podman stop -t 30 "$name" >/dev/null
exit_code="$(podman inspect -f '{{.State.ExitCode}}' "$name")"
[ "$exit_code" = 0 ] || fail "the container exited with $exit_code on SIGTERM"
say "stopped cleanly in $((SECONDS - stop_started)) s"
say "smoke passed in $((SECONDS - started)) s"
