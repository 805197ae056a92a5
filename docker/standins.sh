#!/usr/bin/env bash
# Builds local stand-ins for the postgres and redis images compose.yaml and the kube play smoke use, from
# Debian's packages on top of the stand-in base image (no registry is reachable here). Skips those that exist
# (FORCE=1 rebuilds). Elsewhere, set POSTGRES_IMAGE / REDIS_IMAGE to the official images instead.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_podman
image_exists "$BASE_IMAGE" || "$REPO_ROOT/docker/base-image.sh"
for pair in "postgres:$POSTGRES_IMAGE" "redis:$REDIS_IMAGE"; do
    kind="${pair%%:*}" tag="${pair#*:}"
    if image_exists "$tag" && [ -z "${FORCE:-}" ]; then
        say "$tag exists"
        continue
    fi
    say "building $tag from Debian's $kind package"
    podman build -q --format docker --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        -f "$REPO_ROOT/docker/standins/$kind.Containerfile" -t "$tag" "$REPO_ROOT/docker/standins" >/dev/null
done
