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

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

fail() { say "FAILED: $*"; exit 1; }

# wait_http WHAT CURL_ARGS...: prints the body once `curl CURL_ARGS` answers 200, sent as the TLS proxy would
# (X-Forwarded-Proto: https). Waits while nothing listens or the answer is 5xx (starting, loading), for at most
# SMOKE_TIMEOUT_S; any 4xx fails at once (a wrong request never turns right by waiting). Calls `still_alive`
# (define it; it fails the smoke when the thing under test has stopped) between tries.
wait_http() {
    local what="$1"; shift
    local deadline=$((SECONDS + ${SMOKE_TIMEOUT_S:-420})) code="" body
    body="$(mktemp)"
    while [ $SECONDS -lt $deadline ]; do
        code="$(curl -s -o "$body" -w '%{http_code}' -H 'X-Forwarded-Proto: https' "$@" || true)"
        case "$code" in
        200) cat "$body"; rm -f "$body"; return 0 ;;
        4*) fail "$what: HTTP $code: $(head -c 500 "$body")" ;;
        esac
        still_alive "$what"
        sleep 2
    done
    fail "$what: still HTTP $code after ${SMOKE_TIMEOUT_S:-420} s: $(head -c 500 "$body")"
}
