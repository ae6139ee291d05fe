#!/usr/bin/env bash
# Restart time on Kafka input with and without checkpoints (issue 19).
#
#   scripts/bench-restart-kafka.sh [SCALES] [RUNS]     (defaults: "200 1000" and 3)
#
# Per scale: `gen --brokers --scale S --seed 1` into fresh topics of 4 partitions (the
# history), then a live run over it (`--epoch-ms 100 --checkpoint-every 1s
# --exit-when-idle --idle-timeout-ms 2000`, SQLite only) that checkpoints once it has
# caught up and exits after 2 s of quiet. Then, from a copy of its state, RUNS times each:
#   restore   the same command: restores the newest checkpoint, finds nothing new, exits;
#   replay    the same with `--checkpoint-every 0s`: reads the whole history again, every
#             update skipped by the sink.
# Reported: whole-process seconds minus the 2 s idle wait (medians), i.e. the time until
# the job had caught up with the log. Needs the broker of scripts/kafka-up.sh (started).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALES=${1:-"200 1000"}
RUNS=${2:-3}
BIN=target/release/edu-rtdw
OUT=${OUT:-target/bench-restart-kafka}
BROKERS=127.0.0.1:9092
IDLE_S=2
export PATH="$HOME/.cargo/bin:$PATH"
log() { echo "bench-restart-kafka: $*" >&2; }

[ -x "$BIN" ] || cargo build --release --quiet --bin edu-rtdw
bash scripts/kafka-up.sh >/dev/null
machine="$(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else printf "%.2f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
caught_up() {  # seconds of "$@" minus the idle wait
    /usr/bin/time -f %e -o "$OUT/time" "$@" >/dev/null 2>>"$OUT/log"
    awk -v t="$(cat "$OUT/time")" -v i="$IDLE_S" 'BEGIN {printf "%.2f", t - i}'
}

echo "| records (Kafka) | checkpoint (size) | restore: caught up after (median s) | replay without checkpoints (median s) |"
echo "|---|---|---|---|"
for scale in $SCALES; do
    rm -rf "$OUT" && mkdir -p "$OUT"
    prefix="rst$(date +%s%N | tail -c 9)_"
    topics=(timeline_client_topic blink_stg_activity__channel_name_dictionary_da qos_log agora_record
            uc_account-student uc_account-user data_pack_order_info timeline_analysis_student edu_rtdw_dlq)
    scripts/kafka-tool.sh ensure-topics "$BROKERS" 4 30 "${topics[@]/#/$prefix}" >/dev/null
    "$BIN" gen --brokers "$BROKERS" --topic-prefix "$prefix" --scale "$scale" --seed 1 --partitions 4 >"$OUT/gen"
    records=$(awk '{print $1; exit}' "$OUT/gen")
    sqlite_only="$OUT/sqlite.toml"
    { echo "[routes]"; for o in $(grep -oP '^\s+\w+ = "\K[a-z_0-9]+(?=" =>)' dataflows/src/output.rs) dead_letters; do echo "$o = [\"sqlite\"]"; done; } >"$sqlite_only"
    run=("$BIN" run --brokers "$BROKERS" --topic-prefix "$prefix" --sqlite "$OUT/k.db" --config "$sqlite_only" -q
         --epoch-ms 100 --exit-when-idle --idle-timeout-ms $((IDLE_S * 1000)))
    log "scale $scale: $records records: history"
    RUST_LOG=edu_rtdw=info "${run[@]}" --checkpoint-every 1s 2>"$OUT/history.log" >/dev/null
    size=$(grep -o 'checkpoint at [0-9]*: [0-9]* bytes' "$OUT/history.log" | tail -1 | awk '{printf "%.1f MiB", $4 / 1048576}')
    mkdir -p "$OUT/saved" && cp -r "$OUT"/k.db* "$OUT/k.checkpoints" "$OUT/saved/"
    restore=() replay=()
    for r in $(seq "$RUNS"); do
        for mode in restore replay; do
            rm -rf "$OUT"/k.db* "$OUT/k.checkpoints" && cp -r "$OUT"/saved/* "$OUT/"
            every=$([ "$mode" = restore ] && echo 1h || echo 0s)
            t=$(caught_up "${run[@]}" --checkpoint-every "$every")
            log "scale $scale run $r $mode: $t s"
            if [ "$mode" = restore ]; then restore+=("$t"); else replay+=("$t"); fi
        done
    done
    echo "| $records | $size | $(printf '%s\n' "${restore[@]}" | median) | $(printf '%s\n' "${replay[@]}" | median) |"
done
echo
echo "Machine: $machine; load before: $(cut -d' ' -f1-3 /proc/loadavg)."
