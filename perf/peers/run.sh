#!/usr/bin/env bash
# Router vs NATS vs Redis in one run: the same fan-out-N workload (same driver,
# payload, window and swarm; `ctirouter-perf compare`) for N = 10, 100, 1000.
#
#   [PERF_OUT=DIR] [PROBE=0] perf/peers/run.sh [--duration S] [--subscribers 10,100,1000] [more compare flags]
#
# Installs nats-server and redis-server from Debian if absent, starts each on
# 127.0.0.1 on a free port, pinned to the same core as the router (core 0,
# tuning/2-core-bench.toml; SERVER_CORES overrides), leaves the harness free
# to use both (HARNESS_CORES pins it: at 1 M deliveries/s one core is too
# little for driver and swarm), stops the servers by PID on exit. Results: perf/results/compare/compare.md (+ .json,
# one CDF plot per run).
#
# The limit probe runs too (`compare --probe`, PROBE=0 leaves it out): a
# minimal batching fan-out (`ctirouter-perf limit-probe`, its own process,
# pinned to the same cores via --probe-cores) that reads the driver once per
# batch and writes the batch to each subscriber with one write: this
# machine's limit for the same fan-out, in the same run ("router ÷ limit").
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${PERF_OUT:-$root/perf/results/compare}"
work="$(mktemp -d)"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v nats-server >/dev/null || ! command -v redis-server >/dev/null; then
    apt-get update
    apt-get install -y nats-server redis-server
fi
# Debian may start a redis service on 6379; ours runs on its own port.

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listening on 127.0.0.1:$1" >&2
    return 1
}

# The router runs on core 0 (ingest and shard, the scenarios' tuning file);
# the peers get the same core; the harness floats unless HARNESS_CORES is set.
cores="${SERVER_CORES:-0}"
harness=()
if [ -n "${HARNESS_CORES:-}" ]; then
    harness=(--harness-cores "$HARNESS_CORES")
fi
probe=()
if [ "${PROBE:-1}" != 0 ]; then
    probe=(--probe --probe-cores "$cores")
fi

nats_port="$(free_port)"
# max_pending: a subscriber may lag as far as the router's --output-bound in
# the fanout scenarios (64 MiB), so neither cuts readers the other keeps.
cat > "$work/nats.conf" <<CONF
listen: 127.0.0.1:$nats_port
max_pending: 67108864
max_connections: 20000
CONF
taskset -c "$cores" nats-server -c "$work/nats.conf" > "$work/nats.log" 2>&1 &
nats_pid=$!
pids+=("$nats_pid")
wait_port "$nats_port"

redis_port="$(free_port)"
taskset -c "$cores" redis-server --bind 127.0.0.1 --port "$redis_port" --save "" \
    --appendonly no --maxclients 20000 \
    --client-output-buffer-limit "pubsub 64mb 64mb 60" > "$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
wait_port "$redis_port"

echo "nats-server pid $nats_pid on 127.0.0.1:$nats_port ($(nats-server --version 2>&1 | head -1))"
echo "redis-server pid $redis_pid on 127.0.0.1:$redis_port ($(redis-server --version | head -1))"

cd "$root"
cargo build --release -p ctirouter -p ctirouter-perf
ulimit -n "$(ulimit -Hn)"
mkdir -p "$out"
"$root/target/release/ctirouter-perf" "${harness[@]}" compare \
    --nats "127.0.0.1:$nats_port" --nats-pid "$nats_pid" \
    --redis "127.0.0.1:$redis_port" --redis-pid "$redis_pid" \
    "${probe[@]}" --out "$out" "$@"
cp "$work/nats.log" "$out/nats-server.log"
cp "$work/redis.log" "$out/redis-server.log"
echo "results: $out/compare.md"
