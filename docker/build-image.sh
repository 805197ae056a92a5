#!/usr/bin/env bash
# `make image`: builds the platform's image ($APP_IMAGE, default localhost/servingplatform:latest) with podman
# from this checkout, first building the local stand-in base image if it is missing (docker/base-image.sh).
#
# What it passes for this machine:
#   - the machine's CA bundle, mounted read-only, so pip inside the build trusts what the machine trusts;
#   - the local wheel folder pip uses here (PIP_FIND_LINKS or `pip config get global.find-links`, override with
#     WHEELS_DIR), mounted with a pip.conf pointing at it, where the CPU build of torch lies; with no such folder
#     the Dockerfile's default TORCH_INDEX_URL (PyTorch's CPU index) is used instead.
# Extra arguments go to `podman build` (e.g. --no-cache, --build-arg BASE_IMAGE=...).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_podman
cd "$REPO_ROOT"

image_exists "$BASE_IMAGE" || "$REPO_ROOT/docker/base-image.sh"

ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
wheels="${WHEELS_DIR:-${PIP_FIND_LINKS:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}}"
wheels="${wheels%% *}"   # the first folder when several are listed
args=(--format docker --build-arg "BASE_IMAGE=$BASE_IMAGE" -f docker/Dockerfile -t "$APP_IMAGE")
pip_conf="$(mktemp)"
trap 'rm -f "$pip_conf"' EXIT
{
    echo "[global]"
    [ ! -f "$ca_bundle" ] || echo "cert = /etc/ssl/certs/ca-certificates.crt"
    [ -z "$wheels" ] || [ ! -d "$wheels" ] || echo "find-links = /wheels"
} >"$pip_conf"
chmod 0644 "$pip_conf"
args+=(-v "$pip_conf:/etc/pip.conf:ro")
if [ -f "$ca_bundle" ]; then
    args+=(-v "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
fi
if [ -n "$wheels" ] && [ -d "$wheels" ]; then
    say "CPU torch from the local wheel folder $wheels"
    args+=(-v "$wheels:/wheels:ro" --build-arg "TORCH_INDEX_URL=")
fi

say "podman build ${args[*]} $* ."
started=$(date +%s)
podman build "${args[@]}" "$@" .
say "built $APP_IMAGE in $(( $(date +%s) - started )) s ($(podman image inspect -f '{{.Size}}' "$APP_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
