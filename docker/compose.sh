#!/usr/bin/env bash
# podman-compose for docker/compose.yaml with this machine's containers.conf:
#   docker/compose.sh up        # in the foreground, logs of every service; Ctrl-C stops the stack cleanly
#   docker/compose.sh up -d     # in the background. Either builds the app image and the postgres/redis stand-ins
#                               # first if they are missing
#   docker/compose.sh logs -f web
#   docker/compose.sh down      # SIGTERM, STOP_GRACE_S (30) for requests and jobs to finish, then removal of the
#                               # containers and the network; add -v to delete the volumes (database, models) too
# Settings come from docker/.env (ENV_FILE overrides it): copy docker/.env.example and set SECRET_KEY,
# POSTGRES_PASSWORD and REDIS_PASSWORD. COMPOSE_PROJECT_NAME (default servingplatform) prefixes every name.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_podman
command -v podman-compose >/dev/null || { say "podman-compose is missing: apt-get install -y podman-compose"; exit 2; }
compose_file="${COMPOSE_FILE:-$REPO_ROOT/docker/compose.yaml}"
env_file="${ENV_FILE:-$(dirname "$compose_file")/.env}"
project="${COMPOSE_PROJECT_NAME:-servingplatform}"
grace="${STOP_GRACE_S:-30}"
compose() { podman-compose -p "$project" -f "$compose_file" "$@"; }

case "${1:-}" in
up)
    [ -f "$env_file" ] || { say "$env_file is missing: cp docker/.env.example $env_file, then set SECRET_KEY, POSTGRES_PASSWORD and REDIS_PASSWORD"; exit 2; }
    image_exists "$APP_IMAGE" || "$REPO_ROOT/docker/build-image.sh"
    case "$POSTGRES_IMAGE $REDIS_IMAGE" in *localhost/*) "$REPO_ROOT/docker/standins.sh" ;; esac
    case " $* " in
    *" -d "*|*" --detach "*) compose "$@" ;;
    *)
        # podman-compose 1.0.3 in the foreground leaves some containers running on Ctrl-C and kills others
        # with SIGHUP: start in the background, follow the logs, and stop everything with its grace period.
        compose up -d "${@:2}" >/dev/null
        stop_stack() {
            trap - INT TERM
            say "stopping the stack (up to $grace s; containers and volumes are kept, \"down\" removes them)"
            compose stop -t "$grace" >/dev/null 2>&1
            kill "$logs" 2>/dev/null || true
            exit 0
        }
        trap stop_stack INT TERM
        say "started; following the logs (Ctrl-C stops the stack)"
        compose logs -f -n >&2 &
        logs=$!
        wait "$logs"
        ;;
    esac
    ;;
down|stop)
    case " $* " in *" -t "*|*" --timeout"*) compose "$@" ;; *) compose "$1" -t "$grace" "${@:2}" ;; esac
    if [ "$1" = down ] && podman network exists "${project}_default"; then
        podman network rm "${project}_default" >/dev/null
    fi
    ;;
*) compose "$@" ;;
esac
