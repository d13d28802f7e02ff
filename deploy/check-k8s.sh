#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests (deploy/k8s/):
#   1. `kubectl kustomize` renders each overlay (deploy/k8s/overlays/*) the way a release does:
#      through deploy/k8s/release.sh with every image pinned by digest (a sample images file,
#      deploy/k8s/tests/release-images.txt);
#   2. every rendered object is valid: Kubernetes schemas, strict (PyPI kubernetes-validate,
#      pinned below), and the KEDA / External Secrets schemas of deploy/k8s/schemas/
#      (deploy/k8s/check-manifests.py);
#   3. the policy check (deploy/k8s/check-policy.py): limits, probes, non-root, read-only root
#      filesystem, no privilege escalation, disruption budgets, autoscaling bounds.
#
#   deploy/check-k8s.sh               check the overlays
#   deploy/check-k8s.sh --self-test   prove each check fails on a broken input
#                                     (deploy/k8s/tests/: a kustomization that does not render,
#                                     invalid-*.yaml, policy-*.yaml)
#
# Needs kubectl (with its built-in kustomize) on PATH; kubernetes-validate is installed into a
# venv cached outside the clone by deploy/tools/pypi-tool.sh.
set -euo pipefail

KUBERNETES_VALIDATE_VERSION="1.37.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
K8S="$REPO_ROOT/deploy/k8s"

log() { echo "[check-k8s] $*"; }

command -v kubectl >/dev/null 2>&1 || { log "kubectl is not on PATH (it renders the overlays)" >&2; exit 1; }
venv_bin=$(bash "$REPO_ROOT/deploy/tools/pypi-tool.sh" kubernetes-validate "$KUBERNETES_VALIDATE_VERSION")
py="$venv_bin/python"

source "$REPO_ROOT/deploy/tools/expect-failure.sh"

# The deploy-steps component reads deploy/kafka/create-topics.sh, outside its folder.
render() { kubectl kustomize --load-restrictor LoadRestrictionsNone "$1"; }

if [ "${1:-}" = "--self-test" ]; then
  status=0
  expect_failure "tests/broken-overlay (a patch without its target)" \
    "no matches for Id Deployment.v1.apps/no-such-service" render "$K8S/tests/broken-overlay" || status=1
  expect_failure "a release without the register-schemas image" "has no line for register-schemas" \
    bash "$K8S/release.sh" render staging "$K8S/tests/release-images-incomplete.txt" || status=1
  "$py" "$K8S/check-manifests.py" --self-test || status=1
  "$py" "$K8S/check-policy.py" --self-test || status=1
  exit $status
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for overlay in "$K8S"/overlays/*/; do
  name=$(basename "$overlay")
  if ! bash "$K8S/release.sh" render "$name" "$K8S/tests/release-images.txt" >"$out/$name.yaml"; then
    log "overlay $name does not render" >&2
    status=1
    continue
  fi
  log "overlay $name: $(grep -c '^kind:' "$out/$name.yaml") objects rendered"
  "$py" "$K8S/check-manifests.py" "$out/$name.yaml" || status=1
  "$py" "$K8S/check-policy.py" --released "$out/$name.yaml" || status=1
done
exit $status
