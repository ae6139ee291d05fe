#!/usr/bin/env bash
# Checkpoint write time and size for N live dedup ids (issue 19).
#
#   scripts/bench-checkpoint.sh [IDS] [EVERY]     (defaults: 2000000 and 5s)
#
# Produces IDS/2 `uc_account-student` and IDS/2 `uc_account-user` records with distinct
# ids (keyed by id, Kafka's own console producer) into fresh topics of 4 partitions, so
# that 2.6's per-id LAST_VALUE folds hold IDS live ids (and its join the pairs). Then one
# live run over them, SQLite only, `--epoch-ms 100 --checkpoint-every EVERY
# --exit-when-idle --idle-timeout-ms 12000`: it catches up with checkpoints taken while it
# reads, then stays quiet for 12 s, taking checkpoints of the whole state. Reported from
# the job's log ("checkpoint at T: BYTES bytes in TOTAL ms (sources held HELD ms)"): the
# checkpoints during the catch-up and the last one (all IDS ids), and the size of that
# checkpoint's directory on disk. Needs the broker of scripts/kafka-up.sh (started).
set -euo pipefail
cd "$(dirname "$0")/.."
IDS=${1:-2000000}
EVERY=${2:-5s}
BIN=target/release/edu-rtdw
OUT=${OUT:-target/bench-checkpoint}
BROKERS=127.0.0.1:9092
export PATH="$HOME/.cargo/bin:$PATH"
log() { echo "bench-checkpoint: $*" >&2; }

[ -x "$BIN" ] || cargo build --release --quiet --bin edu-rtdw
bash scripts/kafka-up.sh >/dev/null
machine="$(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
rm -rf "$OUT" && mkdir -p "$OUT"

prefix="cp$(date +%s%N | tail -c 9)_"
topics=(timeline_client_topic blink_stg_activity__channel_name_dictionary_da qos_log agora_record
        uc_account-student uc_account-user data_pack_order_info timeline_analysis_student edu_rtdw_dlq)
scripts/kafka-tool.sh ensure-topics "$BROKERS" 4 30 "${topics[@]/#/$prefix}" >/dev/null

# Distinct ids 10000001.., one student and one user each (so that the join holds them too).
python3 - "$IDS" "$OUT" <<'EOF'
import json, sys
ids, out = int(sys.argv[1]), sys.argv[2]
half = ids // 2
with open(out + "/students", "w") as s, open(out + "/users", "w") as u:
    for k in range(half):
        i = str(10000001 + k)
        s.write(i + "\t" + json.dumps({"id": i, "channel_id": "c%d" % (k % 500), "update_time": "2026-12-01 10:00:00"}, separators=(",", ":")) + "\n")
        u.write(i + "\t" + json.dumps({"id": i, "name": "user%d" % k, "register_date_time": "2026-12-%02d %02d:00:00" % (1 + k % 28, k % 24),
                                       "status": "NORMAL"}, separators=(",", ":")) + "\n")
EOF
for t in student user; do
    log "producing $((IDS / 2)) records into ${prefix}uc_account-$t"
    scripts/kafka-tool.sh console-producer --bootstrap-server "$BROKERS" --topic "${prefix}uc_account-$t" \
        --property parse.key=true --property "key.separator=$(printf '\t')" \
        --producer-property linger.ms=50 --producer-property batch.size=262144 <"$OUT/${t}s" >/dev/null
done

sqlite_only="$OUT/sqlite.toml"
{ echo "[routes]"; for o in $(grep -oP '^\s+\w+ = "\K[a-z_0-9]+(?=" =>)' dataflows/src/output.rs) dead_letters; do echo "$o = [\"sqlite\"]"; done; } >"$sqlite_only"
log "run: catch up over $IDS records, then 12 s quiet, checkpoints every $EVERY"
started=$(date +%s.%N)
RUST_LOG=edu_rtdw=info "$BIN" run --brokers "$BROKERS" --topic-prefix "$prefix" --sqlite "$OUT/c.db" --config "$sqlite_only" -q \
    --epoch-ms 100 --checkpoint-every "$EVERY" --exit-when-idle --idle-timeout-ms 12000 2>"$OUT/run.log" >/dev/null
elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
leads=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT SUM(leads) FROM registrations_hourly_level").fetchone()[0])' "$OUT/c.db")
on_disk=$(du -sb "$(ls -d "$OUT"/c.checkpoints/*/ | sort | tail -1)" | awk '{printf "%.1f MiB", $1 / 1048576}')

echo "Checkpoints of a live run over $IDS distinct dedup ids ($((IDS / 2)) students + $((IDS / 2)) users; 2.6 counts $leads leads), every $EVERY, run $elapsed s:"
echo
echo "| checkpoint at | size | total ms | sources held ms |"
echo "|---|---|---|---|"
grep -oP 'checkpoint at \K[0-9]+: [0-9]+ bytes in [0-9]+ ms \(sources held [0-9]+' "$OUT/run.log" |
    awk '{printf "| %s | %.1f MiB | %s | %s |\n", $1, $2 / 1048576, $5, $9}' | sed 's/: |/ |/'
echo
echo "Newest checkpoint on disk (shards + manifest): $on_disk. Machine: $machine; load before: $(cut -d' ' -f1-3 /proc/loadavg)."
