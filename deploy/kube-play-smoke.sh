#!/usr/bin/env bash
# Smoke test of the single-node overlay under `podman kube play` (no cluster here): renders
# deploy/kubernetes/overlays/single-node with a few smoke-only changes, plays the Deployment, its ConfigMap,
# Secret and volume claim, and checks that the pod answers /health/ready and a prediction, then tears it down.
# Smoke-only changes: the local image (never pulled), the host's network and a free port instead of a Service
# (kube play maps no container port on the host's network),
# this machine's PostgreSQL (database SMOKE_DB, default sp_kube_smoke, created and dropped here) and Redis
# (database number SMOKE_REDIS_DB, default 10, flushed here). Kinds kube play does not run (Namespace, Service,
# ServiceAccount) are left out.
#   deploy/kube-play-smoke.sh     # needs `make image`; a few minutes
set -euo pipefail
source "$(dirname "$0")/../docker/lib.sh"
require_podman
SMOKE_DB="${SMOKE_DB:-sp_kube_smoke}" SMOKE_REDIS_DB="${SMOKE_REDIS_DB:-10}" SMOKE_TIMEOUT_S="${SMOKE_TIMEOUT_S:-600}"
[ "$SMOKE_DB" != test ] || { say "SMOKE_DB must not be the tests' database"; exit 2; }
image_exists "$APP_IMAGE" || { say "$APP_IMAGE is missing: run 'make image' first"; exit 2; }
kubectl="$("$REPO_ROOT/deploy/tools.sh" kubectl)"
work="$(mktemp -d)"
port="$(free_port)"
base="http://127.0.0.1:$port"
pg=(-h 127.0.0.1 -p 5432 -U postgres)
# kube play creates this network on first use; remove it afterwards unless it was there before.
kube_net=podman-default-kube-network
podman network exists "$kube_net" && keep_net=1 || keep_net=""

cleanup() {
    status=$?
    if [ -f "$work/play.yaml" ]; then
        [ "$status" = 0 ] || podman logs --tail 40 servingplatform-pod-0-app >&2 2>/dev/null || true
        podman kube down "$work/play.yaml" >/dev/null 2>&1 || true
        podman volume rm -f servingplatform-var >/dev/null 2>&1 || true
        [ -n "$keep_net" ] || podman network rm "$kube_net" >/dev/null 2>&1 || true
    fi
    dropdb "${pg[@]}" --if-exists "$SMOKE_DB" 2>/dev/null || true
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap "exit 143" INT TERM

mkdir "$work/smoke"
cat >"$work/smoke/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$(realpath --relative-to="$work/smoke" "$REPO_ROOT/deploy/kubernetes/overlays/single-node")]
images:
  - {name: registry.example.com/servingplatform, newName: ${APP_IMAGE%:*}, newTag: ${APP_IMAGE##*:}}
secretGenerator:
  - name: platform-secrets
    behavior: replace
    literals:
      - SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')
      - DATABASE_URL=postgres://postgres@127.0.0.1:5432/$SMOKE_DB
      - REDIS_URL=redis://127.0.0.1:6379/$SMOKE_REDIS_DB
      - MODEL_SERVER_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
patches:
  - target: {kind: Deployment, name: servingplatform}
    patch: |
      - {op: add, path: /spec/template/spec/hostNetwork, value: true}
      - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: HOST, value: 127.0.0.1}}
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: PORT, value: "$port"}}
      - {op: remove, path: /spec/template/spec/containers/0/ports}
      - {op: replace, path: /spec/template/spec/containers/0/startupProbe/httpGet/port, value: $port}
      - {op: replace, path: /spec/template/spec/containers/0/livenessProbe/httpGet/port, value: $port}
      - {op: replace, path: /spec/template/spec/containers/0/readinessProbe/httpGet/port, value: $port}
YAML
"$kubectl" kustomize "$work/smoke" >"$work/rendered.yaml"
"$("$REPO_ROOT/deploy/tools.sh" python)" - "$work/rendered.yaml" "$work/play.yaml" <<'PY'
import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] in
        ("Deployment", "ConfigMap", "Secret", "PersistentVolumeClaim")]
# podman 4.3's kube play fails on a Secret read through envFrom ("is not valid JSON"): the smoke passes its
# (generated, throwaway) values as a ConfigMap of the same name instead.
for doc in docs:
    if doc["kind"] == "Secret":
        doc.update(kind="ConfigMap", data={k: base64.b64decode(v).decode() for k, v in doc["data"].items()})
        doc.pop("type", None)
    if doc["kind"] == "Deployment":
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    source["configMapRef"] = source.pop("secretRef")
yaml.safe_dump_all(docs, open(sys.argv[2], "w"), sort_keys=False)
PY

dropdb "${pg[@]}" --if-exists "$SMOKE_DB"
createdb "${pg[@]}" "$SMOKE_DB"
redis-cli -n "$SMOKE_REDIS_DB" flushdb >/dev/null
started=$SECONDS
podman kube play "$work/play.yaml" >"$work/play.log" 2>&1 || { cat "$work/play.log" >&2; fail "podman kube play"; }
say "playing the single-node overlay, web on $base"

still_alive() {
    [ "$(podman inspect -f '{{.State.Status}}' servingplatform-pod-0-app 2>/dev/null)" != exited ] \
        || fail "the pod's container exited while waiting for $1"
}
# ALLOWED_HOSTS of the overlay's ConfigMap: localhost, not 127.0.0.1.
wait_http "/health/ready" "$base/health/ready" -H "Host: localhost" >/dev/null
say "/health/ready answered 200 after $((SECONDS - started)) s"
# The manifests' security context took effect: the root filesystem is read-only, the state volume writable.
! podman exec servingplatform-pod-0-app touch /app/probe 2>/dev/null || fail "the root filesystem is writable"
podman exec servingplatform-pod-0-app touch /var/lib/servingplatform/probe || fail "the state volume is not writable"
key="$(podman exec servingplatform-pod-0-app python manage.py create_api_key kube-smoke --scope predict 2>/dev/null | tail -n1)"
prediction="$(wait_http "a prediction" -H "Host: localhost" -X POST "$base/api/v1/predict/churn-logreg" -H "X-API-Key: $key" \
    -H 'Content-Type: application/json' -d '{"inputs": [[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]]}')"
python3 -c 'import json, sys; assert json.loads(sys.argv[1]).get("predictions")' "$prediction" || fail "$prediction"
say "prediction after $((SECONDS - started)) s: $prediction"
say "kube play smoke passed in $((SECONDS - started)) s"
