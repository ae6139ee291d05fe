#!/usr/bin/env bash
# Restart time with and without checkpoints (issue 19), on file replay into SQLite.
#
#   scripts/bench-restart.sh [SCALES] [RUNS]      (defaults: "200 1000" and 3)
#
# Per scale (gen --scale S --seed 1: about 10k records per scale unit):
#   history    `run --checkpoint-every 500ms` over the whole input (the history); its log
#              gives every checkpoint's size, total time and the time the sources were held.
#   restore    the same command again with `--checkpoint-every 1h`: restores the newest
#              checkpoint, reads what follows it (at most ~500 ms of input), skips what the
#              sink holds, exits. RUNS runs; the state is copied back before each.
#   replay     the same with `--checkpoint-every 0s`: today's restart without checkpoints,
#              every record read again, every update skipped by the sink. RUNS runs.
# Times are whole processes (/usr/bin/time), medians. Output: a Markdown table on stdout.
# File replay scans each partition file to its end at start (progress totals) and scans
# the restored partitions' lines up to their positions (no parsing): both grow with the
# history's bytes, unlike a Kafka restart, which seeks.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALES=${1:-"200 1000"}
RUNS=${2:-3}
BIN=target/release/edu-rtdw
OUT=${OUT:-target/bench-restart}
export PATH="$HOME/.cargo/bin:$PATH"
log() { echo "bench-restart: $*" >&2; }

[ -x "$BIN" ] || cargo build --release --quiet --bin edu-rtdw
machine="$(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else printf "%.2f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
seconds() { /usr/bin/time -f %e -o "$OUT/time" "$@" >/dev/null 2>>"$OUT/log"; cat "$OUT/time"; }

echo "| records | history run | checkpoints (n, median size, median total / held ms) | restore (median s) | replay without checkpoints (median s) |"
echo "|---|---|---|---|---|"
for scale in $SCALES; do
    rm -rf "$OUT" && mkdir -p "$OUT"
    "$BIN" gen --out "$OUT/input" --scale "$scale" --seed 1 >/dev/null
    records=$(cat "$OUT"/input/*/* | wc -l)
    run=("$BIN" run --input-dir "$OUT/input" --sqlite "$OUT/s.db" -q)
    log "scale $scale: $records records: history"
    history=$(RUST_LOG=edu_rtdw=info /usr/bin/time -f %e -o "$OUT/time" "${run[@]}" --checkpoint-every 500ms 2>"$OUT/history.log" >/dev/null; cat "$OUT/time")
    grep -o 'checkpoint at [0-9]*: [0-9]* bytes in [0-9]* ms (sources held [0-9]* ms)' "$OUT/history.log" >"$OUT/checkpoints" || true
    n=$(wc -l <"$OUT/checkpoints")
    size=$(awk '{print $4}' "$OUT/checkpoints" | median)
    total=$(awk '{print $7}' "$OUT/checkpoints" | median)
    held=$(awk '{print $11}' "$OUT/checkpoints" | median)
    mkdir -p "$OUT/saved" && cp -r "$OUT"/s.db* "$OUT/s.checkpoints" "$OUT/saved/"
    restore=() replay=()
    for r in $(seq "$RUNS"); do
        for mode in restore replay; do
            rm -rf "$OUT"/s.db* "$OUT/s.checkpoints" && cp -r "$OUT"/saved/* "$OUT/"
            every=$([ "$mode" = restore ] && echo 1h || echo 0s)
            t=$(seconds "${run[@]}" --checkpoint-every "$every")
            log "scale $scale run $r $mode: $t s"
            if [ "$mode" = restore ]; then restore+=("$t"); else replay+=("$t"); fi
        done
    done
    mib=$(awk -v b="$size" 'BEGIN {printf "%.1f", b / 1048576}')
    echo "| $records | ${history} s | $n, $mib MiB, $total / $held ms | $(printf '%s\n' "${restore[@]}" | median) | $(printf '%s\n' "${replay[@]}" | median) |"
done
echo
echo "Machine: $machine; load before: $(cut -d' ' -f1-3 /proc/loadavg)."
