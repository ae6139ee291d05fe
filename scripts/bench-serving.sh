#!/usr/bin/env bash
# Serving costs (issue 20), on file replay into SQLite with the release binary.
#
#   scripts/bench-serving.sh [SCALES] [RUNS]      (defaults: "200 1000" and 3)
#
# Per scale (gen --scale S --seed 1: about 10k records per scale unit):
#   memory   peak RSS and wall time of `run` with serving off (--no-final-snapshot: nothing
#            arranged for reads), on (--admin: every output arranged, no dump) and on with
#            the final snapshot read from the shards and written, and no periodic dump (as
#            the default of a bounded run does); checkpoints off in all; RUNS runs, medians.
#   queries  `run --sql-listen` over the same input while pgbench's 10 clients (-c 10) run
#            a point lookup of 2.7 and, separately, a full scan of 2.3 in a loop: latency
#            p50/p99 from pgbench's per-statement log, and the run's wall time against the
#            run without clients (the ingestion slowdown). Ingestion runs at full speed, not
#            at 50 % of it: the slowdown is the worst case. QUERIES=0 skips this part.
# Output: Markdown tables on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALES=${1:-"200 1000"}
RUNS=${2:-3}
BIN=target/release/edu-rtdw
OUT=${OUT:-target/bench-serving}
PORT=${PORT:-6975}
log() { echo "bench-serving: $*" >&2; }

[ -x "$BIN" ] || cargo build --release --quiet --bin edu-rtdw
command -v pgbench >/dev/null || { log "pgbench is missing (Debian's postgresql-client)"; exit 1; }
machine="$(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "Machine: $machine."
echo

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else printf "%.2f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# Percentile P of the latencies (µs, column 3 of pgbench's log), in ms.
percentile() { awk '{print $3}' "$@" | sort -n | awk -v p="$P" '{a[NR]=$1} END {if (NR == 0) print "n/a"; else {i = int(NR * p / 100); if (i < 1) i = 1; printf "%.1f\n", a[i] / 1000}}'; }

# `run` over the input, from scratch and without checkpoints (they copy the state, which
# would blur what serving costs); prints "RSS_MiB SECONDS".
measure() {
    rm -rf "$OUT"/s.db* "$OUT/s.checkpoints" "$OUT/snapshots"
    /usr/bin/time -f "%M %e" -o "$OUT/time" "$BIN" run --input-dir "$OUT/input" --sqlite "$OUT/s.db" -q \
        --checkpoint-every 0s "$@" >/dev/null 2>>"$OUT/log"
    awk '{printf "%.0f %s\n", $1 / 1024, $2}' "$OUT/time"
}

if [ "${MEMORY:-1}" != 0 ]; then
echo "| records | RSS off (MiB) | RSS serving (MiB) | RSS serving + final dump (MiB) | time off (s) | time serving (s) | time serving + dump (s) |"
echo "|---|---|---|---|---|---|---|"
for scale in $SCALES; do
    rm -rf "$OUT" && mkdir -p "$OUT"
    "$BIN" gen --out "$OUT/input" --scale "$scale" --seed 1 >/dev/null
    records=$(cat "$OUT"/input/*/* | wc -l)
    off_rss=() on_rss=() dump_rss=() off_s=() on_s=() dump_s=()
    for r in $(seq "$RUNS"); do
        read -r rss s < <(measure --no-final-snapshot)
        off_rss+=("$rss") off_s+=("$s")
        read -r rss s < <(measure --no-final-snapshot --admin "127.0.0.1:$((PORT + 1))")
        on_rss+=("$rss") on_s+=("$s")
        read -r rss s < <(measure --snapshot-dir "$OUT/snapshots" --snapshot-every 1h)
        dump_rss+=("$rss") dump_s+=("$s")
        log "scale $scale run $r: off ${off_rss[-1]} MiB ${off_s[-1]} s, serving ${on_rss[-1]} MiB ${on_s[-1]} s, + dump $rss MiB $s s"
    done
    m() { printf '%s\n' "$@" | median; }
    echo "| $records | $(m "${off_rss[@]}") | $(m "${on_rss[@]}") | $(m "${dump_rss[@]}") | $(m "${off_s[@]}") | $(m "${on_s[@]}") | $(m "${dump_s[@]}") |"
done
echo

fi

# Queries while ingesting (the last scale's input); QUERIES=0 skips them, MEMORY=0 the
# memory part (the input of the last scale must then be in $OUT/input already).
[ "${QUERIES:-1}" = 0 ] && exit 0
echo "SELECT cc_index FROM staff_index WHERE cc_id = 7;" >"$OUT/point.sql"
echo "SELECT count(*), sum(event_count) FROM timeline_signal_analysis;" >"$OUT/scan.sql"
echo "| query (10 clients, during ingestion) | statements | p50 (ms) | p99 (ms) | run with clients (s) | run without (s) |"
echo "|---|---|---|---|---|---|"
base=$(measure --no-final-snapshot | awk '{print $2}')
for q in point scan; do
    rm -rf "$OUT"/s.db* "$OUT/s.checkpoints" "$OUT/snapshots" "$OUT"/pgbench_log.*
    /usr/bin/time -f "%e" -o "$OUT/time" "$BIN" run --input-dir "$OUT/input" --sqlite "$OUT/s.db" -q \
        --checkpoint-every 0s --no-final-snapshot --sql-listen "127.0.0.1:$PORT" >/dev/null 2>>"$OUT/log" &
    job=$!
    until pg_isready -q -h 127.0.0.1 -p "$PORT" 2>/dev/null || ! kill -0 "$job" 2>/dev/null; do sleep 0.05; done
    (cd "$OUT" && pgbench -n -M simple -c 10 -j 2 -T 600 -l -f "$q.sql" -h 127.0.0.1 -p "$PORT" -U edu edu \
        >/dev/null 2>&1 || true) &
    bench=$!
    wait "$job"
    kill "$bench" 2>/dev/null || true
    wait "$bench" 2>/dev/null || true
    n=$(cat "$OUT"/pgbench_log.* 2>/dev/null | wc -l)
    p50=$(P=50 percentile "$OUT"/pgbench_log.*)
    p99=$(P=99 percentile "$OUT"/pgbench_log.*)
    echo "| $q | $n | $p50 | $p99 | $(cat "$OUT/time") | $base |"
done
