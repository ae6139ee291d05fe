#!/usr/bin/env bash
# A/B throughput of two builds on this machine, interleaved so that both see the same
# background load: `edu-rtdw bench` (all nine metrics, in memory, sinks discarded)
# alternately with binary A and binary B, ROUNDS times each; prints every run and the
# medians of records/s and records per CPU-second.
#
#   scripts/bench-ab.sh A_BIN B_BIN [ROUNDS] [WORKERS] [SCALE]      (defaults: 5, 1, 100)
#
# Build A from another commit without touching this checkout, e.g.:
#   git worktree add /tmp/base COMMIT && (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base-target cargo build --release)
set -euo pipefail
A=$1 B=$2 ROUNDS=${3:-5} WORKERS=${4:-1} SCALE=${5:-100}
declare -A rate cpu
for round in $(seq "$ROUNDS"); do
    for side in A B; do
        bin=${!side}
        json=$("$bin" bench --scale "$SCALE" --runs 1 --workers "$WORKERS" | grep '^{')
        r=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1])["all_metrics"][0]; print(int(d["records_per_s"]), int(d["records_per_cpu_s"]))' "$json")
        echo "round $round $side: records/s ${r% *}, records per CPU-second ${r#* }"
        rate[$side]+="${r% *} "
        cpu[$side]+="${r#* } "
    done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for side in A B; do
    echo "$side (${!side}): median records/s $(echo "${rate[$side]}" | median), median records per CPU-second $(echo "${cpu[$side]}" | median)"
done
