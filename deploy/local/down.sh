#!/usr/bin/env bash
# Stops what deploy/local/up.sh started: the processes listed in
# $INFINISTREAM_LOCAL_DIR/pids (default .local-cluster/ at the top of the checkout),
# agents first, then the control plane, then the S3 server and etcd.
#
#   deploy/local/down.sh
#
# Each gets SIGTERM (agents drain their clients and exit), then SIGKILL if it is still
# running after INFINISTREAM_STOP_TIMEOUT seconds (default 10). A pid that is gone, or
# that now belongs to another program (a reused pid), is skipped. The data and logs stay
# in the directory named in $INFINISTREAM_LOCAL_DIR/state.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
run=${INFINISTREAM_LOCAL_DIR:-$root/.local-cluster}
timeout=${INFINISTREAM_STOP_TIMEOUT:-10}
# alive PID: running (a zombie waiting for its parent to reap it has stopped).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z ]]
}
if [[ ! -s "$run/pids" ]]; then
  echo "nothing to stop: no $run/pids"
  exit 0
fi

# Tells a foreground up.sh that the processes it watches are being stopped on purpose.
touch "$run/stopping"
# Lines are "pid name program", in start order; stop in reverse, one at a time, so the
# agents drain while the control plane and the bucket still serve them.
mapfile -t entries < <(tac "$run/pids")
for entry in "${entries[@]}"; do
  read -r pid name program <<<"$entry"
  [[ "$pid" =~ ^[0-9]+$ ]] || continue
  if ! alive "$pid"; then
    echo "$name (pid $pid) had already exited"
    continue
  fi
  # The program's path is the first word of its command line.
  exe=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1 || true)
  if [[ "$(basename "${exe:-?}")" != "$program" ]]; then
    echo "$name: pid $pid is now $(basename "${exe:-?}"), not $program; leaving it alone"
    continue
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while alive "$pid" && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "$name (pid $pid) did not stop within ${timeout}s; killed"
  else
    echo "$name (pid $pid) stopped"
  fi
done
rm -f "$run/pids" "$run/stopping"
if [[ -s "$run/state" ]]; then
  echo "data and logs kept in $(cat "$run/state")"
fi
