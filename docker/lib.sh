# Shared by the scripts in docker/ and deploy/: sourced, never run.
# Image names (override any of them in the environment).
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-localhost/servingplatform-base:bookworm}"
APP_IMAGE="${APP_IMAGE:-localhost/servingplatform:latest}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-localhost/servingplatform-postgres:15}"
REDIS_IMAGE="${REDIS_IMAGE:-localhost/servingplatform-redis:7}"
export BASE_IMAGE APP_IMAGE POSTGRES_IMAGE REDIS_IMAGE
# podman needs runc, cgroupfs and explicit ulimits on our machines (docker/podman/containers.conf).
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO_ROOT/docker/podman/containers.conf}"

say() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

require_podman() {
    command -v podman >/dev/null || { say "podman is missing: apt-get install -y podman buildah podman-compose debootstrap runc"; exit 2; }
}

image_exists() { podman image exists "$1"; }

# The Debian mirror and security mirror this machine's apt already uses (an air-gapped site points
# its apt at an internal mirror; debootstrap must use the same one). Overridable by DEBIAN_MIRROR /
# DEBIAN_SECURITY_MIRROR.
apt_uris() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed -n -E 's/^URIs:[[:space:]]*//p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
        | tr ' ' '\n'
}
debian_mirror() {
    echo "${DEBIAN_MIRROR:-$(apt_uris | grep -E '/debian/?$' | head -n1)}"
}
debian_security_mirror() {
    echo "${DEBIAN_SECURITY_MIRROR:-$(apt_uris | grep -E '/debian-security/?$' | head -n1)}"
}
