#!/usr/bin/env bash
# Instructions per event leased and acked: the release broker under
# callgrind, one HTTP thread, twice with the same 20,000-event prefill (4
# producers, batches of 1,000): once with the prefill alone, once followed
# by 8 consumers leasing 100 at a time and acking each batch. The
# difference is the cost of leasing and acking, startup and shutdown cancel.
#
#   benches/callgrind/lease_ack.sh [BINARY]     # default target/release/event-broker
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/event-broker}
events=${EVENTS:-20000}
command -v valgrind >/dev/null || {
  echo "valgrind is needed: apt-get install valgrind" >&2
  exit 1
}
[ -x "$bin" ] || cargo build --release --locked

# Instructions of one run of the broker under the given bench arguments.
run() {
  local work port server total
  work=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BIND_ADDR=127.0.0.1 PORT=$port DATA_DIR=$work/data HTTP_THREADS=1 LOG_LEVEL=warn QUEUE_MAX_SIZE=1000000 \
    valgrind --tool=callgrind --callgrind-out-file="$work/out" "$bin" serve >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/api/health/ready" && break
    sleep 0.1
  done
  "$bin" bench "$@" --url "http://127.0.0.1:$port" --queue callgrind >/dev/null 2>&1
  kill -TERM "$server"
  wait "$server" || true
  total=$(grep -m1 '^summary:' "$work/out" | awk '{print $2}')
  rm -rf "$work"
  echo "$total"
}

prefill=$(run produce --producers 4 --batch 1000 --count "$events" --keep)
both=$(run consume --consumers 8 --max 100 --prefill "$events")
echo "prefill $prefill, prefill and consume $both: $(((both - prefill) / events)) instructions an event leased and acked"
