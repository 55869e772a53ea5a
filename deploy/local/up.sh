#!/usr/bin/env bash
# A local multi-process InfiniStream on 127.0.0.1: etcd, an S3-compatible server
# (SeaweedFS), one control plane over etcd, and agents split by role.
#
#   deploy/local/up.sh            # start everything; Ctrl-C stops it all
#   deploy/local/up.sh --detach   # start everything in the background and return
#   deploy/local/down.sh          # stop what up.sh started (either way)
#
# Ports: etcd 23790, S3 28333, control plane 27070, agents:
#   proxy-produce 4222 (monitoring 8222), proxy-consume 4223 (8224), jobs 4225 (8226).
# Needs `cargo xtask install-tools` (etcd, SeaweedFS) and a release build, which it runs;
# INFINISTREAM_BIN=/path/to/infinistream uses that binary instead of building one.
#
# The processes it started are listed in $INFINISTREAM_LOCAL_DIR/pids (default
# .local-cluster/ at the top of the checkout), one "pid name program" per line, for
# down.sh; the data and logs stay in a temporary directory named at start.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
detach=false
case "${1:-}" in
  --detach | -d) detach=true ;;
  "") ;;
  *) echo "usage: $0 [--detach]" >&2; exit 2 ;;
esac

run=${INFINISTREAM_LOCAL_DIR:-$root/.local-cluster}
mkdir -p "$run"
if [[ -s "$run/pids" ]]; then
  while read -r pid _ _; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "a local cluster is already running (pid $pid, listed in $run/pids); stop it with deploy/local/down.sh" >&2
      exit 1
    fi
  done <"$run/pids"
fi
: >"$run/pids"
rm -f "$run/stopping"

if [[ -n "${INFINISTREAM_BIN:-}" ]]; then
  bin=$INFINISTREAM_BIN
else
  cargo xtask install-tools
  cargo build --release --package infinistream
  bin="$root/target/release/infinistream"
fi
weed="${INFINISTREAM_TOOLS_DIR:-$root/.tools}/venv/bin/weed"
state=$(mktemp -d -t infinistream-local-XXXX)
echo "$state" >"$run/state"

# start NAME PROGRAM ARGS…: runs it in the background with its log in $state/NAME.log
# and records it for down.sh. Detached, each gets its own session (no SIGHUP when the
# terminal closes); setsid execs the program, so the recorded pid is the program's.
launcher=()
if $detach; then launcher=(setsid); fi
start() {
  local name=$1
  shift
  "${launcher[@]}" "$@" >"$state/$name.log" 2>&1 </dev/null &
  echo "$! $name $(basename "$1")" >>"$run/pids"
}

# Ctrl-C, or any process exiting: stop everything with down.sh (unless down.sh, run from
# elsewhere, is what stops them).
on_exit() {
  [[ -e "$run/stopping" ]] || "$root/deploy/local/down.sh" >/dev/null
  echo "stopped; state kept in $state"
}
if ! $detach; then
  trap on_exit EXIT
  trap 'exit 130' INT TERM
fi

export AWS_ACCESS_KEY_ID=infinistream AWS_SECRET_ACCESS_KEY=infinistream-secret AWS_REGION=us-east-1
export INFINISTREAM_GROUP_ID=local INFINISTREAM_GROUP_KEY=local-dev-key

start etcd etcd --name local --data-dir "$state/etcd" \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster local=http://127.0.0.1:23800 \
  --max-txn-ops 10240 --max-request-bytes 10485760 \
  --auto-compaction-mode periodic --auto-compaction-retention 30s
start s3 "$weed" mini -dir="$state/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
  -master.port=29333 -volume.port=28080 -filer.port=28888 -s3.port=28333 -bucket=infinistream
sleep 2

start cp "$bin" control-plane --store etcd://127.0.0.1:23790 --listen 127.0.0.1:27070 \
  --advertise 127.0.0.1:27070 -m 28223
sleep 1

bucket="s3://infinistream?endpoint=http://127.0.0.1:28333&region=us-east-1&allow_http=true"
common=(--control-plane http://127.0.0.1:27070 --bucket "$bucket" -a 127.0.0.1)
start produce "$bin" agent "${common[@]}" --roles proxy-produce -p 4222 -m 8222
start consume "$bin" agent "${common[@]}" --roles proxy-consume -p 4223 -m 8224
start jobs "$bin" agent "${common[@]}" --roles jobs -p 4225 -m 8226
echo "InfiniStream is up: nats://127.0.0.1:4222 (produce), nats://127.0.0.1:4223 (consume); logs in $state"
if $detach; then
  echo "stop it with deploy/local/down.sh"
  exit 0
fi
mapfile -t pids < <(cut -d' ' -f1 "$run/pids")
wait -n "${pids[@]}" || true
if [[ -e "$run/stopping" || ! -s "$run/pids" ]]; then
  exit 0 # down.sh is stopping them
fi
echo "a process exited; see the logs in $state" >&2
exit 1
