#!/usr/bin/env bash
# Renders an overlay with the release's images pinned by digest, and deploys it.
#
#   deploy/k8s/release.sh render <overlay> <images-file>   the manifests on stdout
#   deploy/k8s/release.sh deploy <overlay> <images-file>   apply in order, wait for each stage
#   deploy/k8s/release.sh smoke  <overlay>                 the smoke check through a port-forward
#
# <images-file>: one `<service>=<repository>@sha256:<digest>` per line (the release workflow
# writes it from the pushed images' digests), for each of the eight images. Every placeholder
# image of the base (notify-platform/<service>:local) must be replaced, or rendering fails.
#
# Deploy order: the namespace, configuration and ExternalSecret (waits until the Secret is
# synced) → the deploy-step Jobs (the previous run's are deleted first: Jobs are immutable),
# waits until both complete → the services (notify-platform/phase=services), then waits for
# every rollout. kubectl uses the ambient KUBECONFIG.
set -euo pipefail

K8S="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVICES="gateway outbox-relay user-svc template-svc email-worker push-worker status-projector ingest register-schemas"
TIMEOUT="${RELEASE_TIMEOUT:-10m}"

log() { echo "[release] $*" >&2; }
die() { log "$*"; exit 1; }

render() { # overlay images-file
  local overlay="$K8S/overlays/$1" images=$2 dir line service ref
  [ -d "$overlay" ] || die "no overlay $1 (deploy/k8s/overlays/)"
  [ -f "$images" ] || die "no images file $images"
  # Inside deploy/k8s: kustomize takes only relative paths to other kustomizations.
  dir=$(mktemp -d "$K8S/.release.XXXXXX")
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "  - ../overlays/$1"
    echo "images:"
  } >"$dir/kustomization.yaml"
  for service in $SERVICES; do
    line=$(grep -E "^$service=" "$images" || true)
    [ -n "$line" ] || { rm -rf "$dir"; die "$images has no line for $service"; }
    ref=${line#*=}
    [[ $ref =~ ^[a-z0-9./_:-]+@sha256:[0-9a-f]{64}$ ]] || { rm -rf "$dir"; die "$service: '$ref' is not <repository>@sha256:<digest>"; }
    printf '  - name: notify-platform/%s\n    newName: %s\n    digest: %s\n' "$service" "${ref%@*}" "${ref#*@}" >>"$dir/kustomization.yaml"
  done
  # The deploy-steps component reads deploy/kafka/create-topics.sh, outside its folder.
  kubectl kustomize --load-restrictor LoadRestrictionsNone "$dir" || { rm -rf "$dir"; die "rendering $1 failed"; }
  rm -rf "$dir"
}

namespace_of() { awk '/^kind: Namespace/{ns=1} ns && /^  name:/{print $2; exit}' "$1"; }

deploy() { # overlay images-file
  local out ns
  out=$(mktemp)
  render "$1" "$2" >"$out"
  ns=$(namespace_of "$out")
  [ -n "$ns" ] || die "the $1 overlay renders no Namespace"
  if grep -q 'image: notify-platform/' "$out"; then die "an image is still a placeholder"; fi

  log "1/3 $ns: namespace, configuration, secret references"
  kubectl apply -f "$out" -l 'notify-platform/phase!=services,notify-platform/phase!=deploy-steps'
  kubectl -n "$ns" wait --for=condition=Ready externalsecret/notify-secrets --timeout="$TIMEOUT"

  log "2/3 $ns: deploy steps (topics, schemas)"
  kubectl -n "$ns" delete job -l notify-platform/phase=deploy-steps --ignore-not-found --wait=true
  kubectl apply -f "$out" -l notify-platform/phase=deploy-steps
  kubectl -n "$ns" wait --for=condition=complete job -l notify-platform/phase=deploy-steps --timeout="$TIMEOUT"

  log "3/3 $ns: services"
  kubectl apply -f "$out" -l notify-platform/phase=services
  kubectl -n "$ns" get deployment,statefulset -l notify-platform/phase=services -o name |
    while read -r workload; do
      kubectl -n "$ns" rollout status "$workload" --timeout="$TIMEOUT"
    done
  rm -f "$out"
  log "$1 deployed"
}

smoke() { # overlay
  local ns="notify-$1" port="${SMOKE_LOCAL_PORT:-18080}" pf status
  kubectl -n "$ns" port-forward service/gateway "$port:8080" >/dev/null 2>&1 &
  pf=$!
  status=0
  GATEWAY_URL="http://127.0.0.1:$port" bash "$K8S/smoke.sh" || status=$?
  kill "$pf" 2>/dev/null || true
  return $status
}

case "${1:-}" in
  render) [ $# -eq 3 ] || die "usage: $0 render <overlay> <images-file>"; render "$2" "$3" ;;
  deploy) [ $# -eq 3 ] || die "usage: $0 deploy <overlay> <images-file>"; deploy "$2" "$3" ;;
  smoke) [ $# -eq 2 ] || die "usage: $0 smoke <overlay>"; smoke "$2" ;;
  *) die "usage: $0 render|deploy <overlay> <images-file> | smoke <overlay>" ;;
esac
