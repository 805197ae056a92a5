#!/usr/bin/env bash
# Builds the local stand-in for the image the Dockerfile starts FROM, the way an air-gapped site does:
# a Debian bookworm root filesystem made by debootstrap from the Debian mirror this machine's apt uses,
# with Debian's Python 3.11, imported into podman. Needs root (debootstrap) and about a minute.
#
#   docker/base-image.sh            # builds $BASE_IMAGE (default localhost/servingplatform-base:bookworm)
#   FORCE=1 docker/base-image.sh    # rebuilds it even if it exists
#
# Where a registry is reachable, skip this and build with --build-arg BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_podman

if image_exists "$BASE_IMAGE" && [ -z "${FORCE:-}" ]; then
    say "$BASE_IMAGE exists (FORCE=1 rebuilds it)"
    exit 0
fi
command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install -y debootstrap"; exit 2; }
[ "$(id -u)" = 0 ] || { say "debootstrap needs root"; exit 2; }

mirror="$(debian_mirror)"
security="$(debian_security_mirror)"
[ -n "$mirror" ] || { say "no Debian mirror found in apt's sources: set DEBIAN_MIRROR"; exit 2; }
rootfs="$(mktemp -d /var/tmp/sp-rootfs.XXXXXX)"
cleanup() {
    umount "$rootfs/proc" 2>/dev/null || true
    rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT

say "debootstrap bookworm from $mirror into $rootfs"
debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,libgomp1 \
    bookworm "$rootfs" "$mirror" >/dev/null

# Security and point-release updates, as any base image carries them.
{
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ -z "$security" ] || echo "deb $security bookworm-security main"
} >"$rootfs/etc/apt/sources.list"
mount -t proc proc "$rootfs/proc"
chroot "$rootfs" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get -y -qq upgrade >/dev/null && apt-get clean'
umount "$rootfs/proc"

# pip inside the image installs into a virtualenv (the Dockerfile makes one), like the official image's
# site-packages; Debian's marker would only get in the way of `pip install` run by hand in a container.
rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

say "importing as $BASE_IMAGE"
tar -C "$rootfs" -c . | podman import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap bookworm minbase + Debian python3 from $mirror" \
    - "$BASE_IMAGE" >/dev/null
podman run --rm "$BASE_IMAGE" python3 -c 'import sys, ssl, venv; print("base image:", sys.version.split()[0], ssl.OPENSSL_VERSION)'
