#!/usr/bin/env bash
# Side by side with Redis streams (benches/peers/README.md):
#   1. builds the broker and the driver (cargo build --release --locked;
#      cargo bench --locked --bench peers --no-run);
#   2. starts Debian's redis-server (installed with apt-get when missing)
#      with the AOF fsynced before every answer and no RDB snapshots, and
#      target/release/event-broker serve with WAL_FSYNC=always, each on a
#      free loopback port with a directory of its own;
#   3. runs W1-W4 against both, alternating (benches/peers/main.rs), and
#      prints the table;
#   4. stops both servers and removes their directories, however it ends.
# Arguments go to the driver: --quick, --reps N, --json, --workloads w1,w3,
# ... (benches/peers/run.sh --help lists them). The directories go under
# PEERS_DIR (default: target/), which must be on the disk to measure, not
# a tmpfs. Broker settings in the environment (HTTP_THREADS, ...) reach it.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "peers: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

driver() {
  cargo bench --locked --quiet --bench peers -- "$@"
}

for arg in "$@"; do
  case "$arg" in
    -h | --help) driver --help; exit 0 ;;
  esac
done

command -v redis-server >/dev/null 2>&1 || {
  say "installing redis-server"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends redis-server >/dev/null
}

say "building: cargo build --release --locked; cargo bench --locked --bench peers --no-run"
cargo build --release --locked --quiet
cargo bench --locked --quiet --bench peers --no-run

parent=${PEERS_DIR:-target}
mkdir -p "$parent"
# Absolute: redis-server changes into its --dir before it opens its log.
work=$(mktemp -d "$(cd "$parent" && pwd)/peers.XXXXXX")
[ "$(stat -f -c %T "$work")" != tmpfs ] || fail "$work is on a tmpfs, where fsync costs nothing: set PEERS_DIR to a directory on disk"
mkdir "$work/broker" "$work/redis"

broker_pid=""
redis_pid=""
stop() { # PID: SIGTERM, then wait for it to exit
  kill -TERM "$1" 2>/dev/null || return 0
  wait "$1" 2>/dev/null || true
}
cleanup() {
  status=$?
  [ -z "$broker_pid" ] || stop "$broker_pid"
  [ -z "$redis_pid" ] || stop "$redis_pid"
  if [ "$status" != 0 ]; then
    for log in "$work/broker.log" "$work/redis.log"; do
      [ ! -s "$log" ] || { say "last lines of $log:"; tail -5 "$log" >&2; }
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A loopback port nothing listens on: a connection to it is refused.
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fail "no free loopback port found"
}

# Waits up to 30 s for COMMAND to succeed while process PID runs.
wait_ready() {
  local pid=$1 what=$2
  shift 2
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || fail "$what exited before it was ready"
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  fail "$what was not ready within 30 s"
}

redis_port=$(free_port)
# No automatic AOF rewrite: the driver rewrites the AOF between runs,
# untimed, as it drains the broker's queue between runs.
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" \
  --save '' --appendonly yes --appendfsync always \
  --auto-aof-rewrite-percentage 0 \
  --daemonize no --logfile "$work/redis.log" &
redis_pid=$!
wait_ready "$redis_pid" redis-server redis-cli -h 127.0.0.1 -p "$redis_port" ping

broker_port=$(free_port)
env -u BROKER_TOKEN -u ADMIN_TOKEN -u ENABLE_RATE_LIMIT \
  WAL_FSYNC=always DATA_DIR="$work/broker" PORT="$broker_port" BIND_ADDR=127.0.0.1 \
  QUEUE_MAX_SIZE=10000000 LOG_LEVEL=warn \
  target/release/event-broker serve >"$work/broker.log" 2>&1 &
broker_pid=$!
wait_ready "$broker_pid" event-broker \
  env PORT="$broker_port" BIND_ADDR=127.0.0.1 target/release/event-broker healthcheck

say "$(redis-server --version | cut -d' ' -f1-3) on port $redis_port (pid $redis_pid), event-broker $(git describe --always --dirty 2>/dev/null || echo '?') on port $broker_port (pid $broker_pid), data in $work"
say "$(nproc) cores; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
driver --broker-url "http://127.0.0.1:$broker_port" --broker-pid "$broker_pid" \
  --redis-url "redis://127.0.0.1:$redis_port" --redis-pid "$redis_pid" "$@"
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
