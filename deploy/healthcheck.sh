#!/bin/bash
# The image's HEALTHCHECK: GET /healthz on this process's monitoring port, healthy on a
# 200. The image has no curl or wget, so bash's /dev/tcp speaks HTTP/1.0 itself.
#
# The port is INFINISTREAM_HTTP_PORT (the agent and the control plane both read it) or
# the agent's default 8222; run a control-plane container with INFINISTREAM_HTTP_PORT=8223
# (or its -m) so that this checks it too. The host is INFINISTREAM_HOST when it names one
# address, else 127.0.0.1.
set -u
port=${INFINISTREAM_HTTP_PORT:-8222}
host=${INFINISTREAM_HOST:-127.0.0.1}
case $host in 0.0.0.0 | :: | "[::]" | "") host=127.0.0.1 ;; esac
{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || { echo "unhealthy: nothing listens on $host:$port" >&2; exit 1; }
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
# Bounded: the HEALTHCHECK's --timeout stops a server that never answers.
IFS= read -r status <&3 || status=""
cat <&3 >/dev/null # the rest of the answer, until the server closes (HTTP/1.0)
exec 3<&-
case $status in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) echo "unhealthy: GET http://$host:$port/healthz answered '${status%$'\r'}'" >&2; exit 1 ;;
esac
