#!/usr/bin/env bash
# scripts/cluster.sh N W [run args…]
#
# Starts N edu-rtdw processes of W workers each on 127.0.0.1 (a timely cluster
# of N×W workers), with a host file in a temporary directory, waits for all of
# them and exits with the first non-zero exit code (0 when all succeed). When
# one process fails, the others are stopped. Without run args it runs the
# sample like `edu-rtdw run --snapshot-dir snapshots` (process 0 holds the
# sinks and prints the summary), so `edu-rtdw query METRIC` reads its result.
#
# Environment: EDU_RTDW (the binary; default target/release/edu-rtdw, built
# with `cargo build --release` when missing), EDU_RTDW_CLUSTER_PORT (the first
# port; process i listens on PORT+i; default a random port in 20000-39999).
# An `--admin HOST:PORT` in the run args makes process i serve on PORT+i.
set -euo pipefail

if [[ $# -lt 2 || ! "$1" =~ ^[1-9][0-9]*$ || ! "$2" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/cluster.sh N W [run args…]" >&2
    exit 2
fi
n=$1
w=$2
shift 2

bin=${EDU_RTDW:-}
if [[ -z "$bin" ]]; then
    root="$(cd "$(dirname "$0")/.." && pwd)"
    bin="$root/target/release/edu-rtdw"
    if [[ ! -x "$bin" ]]; then
        (cd "$root" && cargo build --release --bin edu-rtdw)
    fi
fi

port=${EDU_RTDW_CLUSTER_PORT:-$((20000 + RANDOM % 20000))}
tmp=$(mktemp -d)
hosts="$tmp/hosts"
for ((i = 0; i < n; i++)); do
    echo "127.0.0.1:$((port + i))" >>"$hosts"
done

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `run` is implied: the arguments are those of `edu-rtdw run`.
if [[ "${1:-}" == "run" ]]; then
    shift
fi
if [[ $# -eq 0 ]]; then
    # Generate the sample once here, not concurrently in every process.
    if [[ ! -d sample-data ]]; then
        "$bin" gen --out sample-data
    fi
    set -- --snapshot-dir snapshots
fi
for ((i = 0; i < n; i++)); do
    "$bin" -w "$w" -n "$n" -p "$i" -h "$hosts" run "$@" &
    pids+=("$!")
done

rc=0
for ((left = n; left > 0; left--)); do
    if wait -n; then
        continue
    else
        rc=$?
        echo "cluster.sh: a process exited with code $rc; stopping the others" >&2
        break
    fi
done
exit "$rc"
