#!/bin/bash
# Container health probe: GET /health on 127.0.0.1:$APP_PORT, healthy on HTTP 200 (the
# service answers 503 while a hard dependency is down). bash's /dev/tcp only: the runtime
# image carries no curl or wget.
#   healthcheck [path]     (default /health)
set -u
port="${APP_PORT:-8080}"
path="${1:-/health}"
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 5 status_line <&3 || exit 1
exec 3<&- 3>&-
case "$status_line" in
  "HTTP/1."?" 200"*) exit 0 ;;
  *) echo "unhealthy: ${status_line%$'\r'}" >&2; exit 1 ;;
esac
