#!/usr/bin/env bash
# Every scenario, then the router-vs-peers comparisons, into perf/results/
# (or $PERF_OUT_ROOT). Takes ~15 minutes on the 2-core machines.
#
#   perf/run-all.sh [--duration S]      (passed to every run and compare)
#
# Run it on a quiet machine: `ctirouter-perf` warns when the load average is
# high, and every summary records it.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
results="${PERF_OUT_ROOT:-$root/perf/results}"
cd "$root"
cargo build --release -p ctirouter -p ctirouter-perf
ulimit -n "$(ulimit -Hn)"

for scenario in fanout-10 fanout-100 fanout-1000 large-pg login-storm reconnect-storm slow-consumer idle-10k; do
    echo "== $scenario"
    target/release/ctirouter-perf run --scenario "perf/scenarios/$scenario.toml" \
        --out "$results/$scenario" "$@"
done

echo "== router vs peers, max rate"
PERF_OUT="$results/compare" perf/peers/run.sh "$@"
echo "== router vs peers, 10k events/s × 100"
PERF_OUT="$results/compare-10k" perf/peers/run.sh --phase 10k --subscribers 100 "$@"
