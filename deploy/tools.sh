#!/usr/bin/env bash
# Prints the path of one of the offline Kubernetes tools (kubectl, kubernetes-validate, checkov, python),
# installing them first from deploy/requirements.txt into .venv-deploy (about 40 s, once per change of that file).
#   "$(deploy/tools.sh kubectl)" kustomize deploy/kubernetes/overlays/cluster
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${DEPLOY_VENV:-$root/.venv-deploy}"
stamp="$venv/.installed-$(sha256sum "$root/deploy/requirements.txt" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "[tools.sh] installing deploy/requirements.txt into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet -r "$root/deploy/requirements.txt" 2> >(grep -v "is neither a file nor a directory" >&2)
    touch "$stamp"
fi
case "${1:-}" in
kubectl|kubernetes-validate|checkov|python) echo "$venv/bin/$1" ;;
*) echo "usage: $0 kubectl|kubernetes-validate|checkov|python" >&2; exit 2 ;;
esac
