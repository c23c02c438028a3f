#!/usr/bin/env bash
# Instructions per single-event enqueue: the release broker under callgrind
# serving 5,200 single-event requests from 4 producers, one HTTP thread.
# Counts do not drift with the machine's load, unlike timings.
#
#   benches/callgrind/single.sh [BINARY]        # default target/release/event-broker
#
# Prints the instructions of the whole run and per request; the run's
# startup and shutdown are in the total, so compare totals of one setup.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/event-broker}
requests=${REQUESTS:-5200}
command -v valgrind >/dev/null || {
  echo "valgrind is needed: apt-get install valgrind" >&2
  exit 1
}
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BIND_ADDR=127.0.0.1 PORT=$port DATA_DIR=$work/data HTTP_THREADS=1 LOG_LEVEL=${LOG_LEVEL:-info} \
  valgrind --tool=callgrind --callgrind-out-file="$work/out" "$bin" serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 600); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/api/health/ready" && break
  sleep 0.1
done
"$bin" bench produce --url "http://127.0.0.1:$port" --producers 4 --count "$requests" --queue callgrind >/dev/null
kill -TERM "$server"
wait "$server" || true
[ -n "${KEEP:-}" ] && cp "$work/out" "$KEEP"
total=$(grep -m1 '^summary:' "$work/out" | awk '{print $2}')
echo "instructions $total for $requests requests: $((total / requests)) per request (LOG_LEVEL=${LOG_LEVEL:-info})"
