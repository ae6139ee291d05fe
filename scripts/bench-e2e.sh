#!/usr/bin/env bash
# End-to-end benchmark (issue 6): `gen --brokers` at a fixed open-loop rate into
# Apache Kafka (scripts/kafka-up.sh) -> `edu-rtdw run` (Kafka input, live epochs) -> MySQL (and PostgreSQL),
# reporting sustained records/s and p50/p99/p999 latency from each record's
# scheduled send time (its Kafka timestamp) to the commit of its logical time
# by every sink.
#
#   scripts/bench-e2e.sh [SECONDS] [RUNS]      (defaults: 40 and 1)
#
# Series, each on a freshly started broker:
#   1. peak: gen as fast as possible (PEAK_SCALE × 10,000 records) while the
#      program consumes; peak = records / (last commit − first timestamp).
#   2. for each of 25 %, 50 %, 90 % of the peak: gen --rate at that rate for
#      about SECONDS seconds, RUNS times (median reported), per epoch setting.
# Every run uses fresh topics (a new prefix), a fresh database and a fresh
# state file, -w 1, all tables routed to the SQL server under test, and ends
# by itself (--exit-when-idle after 3 s without records; never a kill).
#
# Environment:
#   EDU_RTDW_MYSQL_URL     default mysql://edu:edu@127.0.0.1:3306/edu_rtdw_e2e (database recreated)
#   EDU_RTDW_POSTGRES_URL  default postgres://edu:edu@127.0.0.1:5432/edu_rtdw_e2e (database recreated)
#   SINKS                  "mysql postgres" (default "mysql")
#   EPOCHS                 epoch settings "EPOCH_MS:EPOCH_RECORDS ..." (default "100:4096 20:4096 off:4096");
#                          EPOCH_MS "off": no live epochs (time from offsets alone), run at 50 % only
#   PEAK_SCALE             default 60 (600,000 records)
#   PEAK                   skip step 1 and use this peak (records/s)
#   LOADS                  shares of the peak to run, in percent (default "25 50 90")
#   KAFKA_PROPERTIES       extra librdkafka properties for the program, "k=v k=v" (e.g. fetch.wait.max.ms=50)
#   GEN_PROPERTIES         producer properties for the generator, "k=v k=v" (e.g. linger.ms=100;
#                          passed as gen --kafka-property; gen's default linger.ms is 5)
#   CHECKPOINTS            --checkpoint-every settings to compare, interleaved run by run (default "30s",
#                          the product's default; "0s 1s": without, and with one every second); each
#                          run's checkpoints (count, size, total and held ms) are read from its log
#   DOC=0                  do not rewrite the section of docs/BENCHMARKS.md
# Takes the broker lock (/tmp/edu-rtdw-broker.lock) for the whole series.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${EDU_RTDW_BROKER_LOCKED:-}" ]; then
    exec env EDU_RTDW_BROKER_LOCKED=1 flock -o /tmp/edu-rtdw-broker.lock "$0" "$@"
fi

SECONDS_PER_RUN=${1:-40}
RUNS=${2:-1}
SINKS=${SINKS:-mysql}
EPOCHS=${EPOCHS:-"100:4096 20:4096 off:4096"}
CHECKPOINTS=${CHECKPOINTS:-30s}
PEAK_SCALE=${PEAK_SCALE:-60}
MYSQL_URL=${EDU_RTDW_MYSQL_URL:-mysql://edu:edu@127.0.0.1:3306/edu_rtdw_e2e}
PG_URL=${EDU_RTDW_POSTGRES_URL:-postgres://edu:edu@127.0.0.1:5432/edu_rtdw_e2e}
BIN=target/release/edu-rtdw
# shellcheck source=kafka-env.sh
source scripts/kafka-env.sh
BROKERS=127.0.0.1:9092
OUT=${OUT:-target/bench-e2e}
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.log "$OUT"/*.toml "$OUT"/*.db* "$OUT"/results.txt "$OUT"/results.jsonl
rm -rf "$OUT"/*.checkpoints

[ -x "$BIN" ] || cargo build --release --quiet --bin edu-rtdw
scripts/db-up.sh >/dev/null 2>&1 || scripts/db-up.sh

load=$(cut -d' ' -f1-3 /proc/loadavg)
machine="$(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
log() { echo "bench-e2e: $*" >&2; }

fresh_broker() {
    scripts/kafka-down.sh >/dev/null || true
    if (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
        log "a broker not started by kafka-up.sh still answers on 9092; stop it first"
        exit 1
    fi
    scripts/kafka-up.sh >/dev/null
}

# Recreates the database of URL $2 for sink $1.
reset_db() {
    local db=${2##*/}
    case "$1" in
        mysql) mariadb -h127.0.0.1 -uedu -pedu -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`" ;;
        postgres)
            PGPASSWORD=edu psql -q -h 127.0.0.1 -U edu -d edu_rtdw -c "DROP DATABASE IF EXISTS $db" >/dev/null
            PGPASSWORD=edu psql -q -h 127.0.0.1 -U edu -d edu_rtdw -c "CREATE DATABASE $db" >/dev/null ;;
    esac
}

# A config routing every table to sink $1.
config() {
    local f="$OUT/$1.toml"
    {
        echo "[routes]"
        # The outputs of the registry (dataflows/src/output.rs), and the dead letters.
        for m in $(grep -oP '^\s+\w+ = "\K[a-z_0-9]+(?=" =>)' dataflows/src/output.rs) dead_letters; do
            echo "$m = [\"$1\"]"
        done
        if [ -n "${KAFKA_PROPERTIES:-}" ]; then
            echo "[kafka.properties]"
            for kv in $KAFKA_PROPERTIES; do echo "\"${kv%%=*}\" = \"${kv#*=}\""; done
        fi
    } >"$f"
    echo "$f"
}

# run_one NAME SINK SCALE RATE(0: max) EPOCH_MS EPOCH_RECORDS [CHECKPOINT_EVERY] -> prints the final report JSON
run_one() {
    local name=$1 sink=$2 scale=$3 rate=$4 ems=$5 erec=$6 every=${7:-30s}
    local prefix="e2e$(date +%s%N | tail -c 9)_" url
    [ "$sink" = mysql ] && url=$MYSQL_URL || url=$PG_URL
    local topics=(timeline_client_topic blink_stg_activity__channel_name_dictionary_da qos_log agora_record
                  uc_account-student uc_account-user data_pack_order_info timeline_analysis_student edu_rtdw_dlq)
    scripts/kafka-tool.sh ensure-topics "$BROKERS" 4 30 "${topics[@]/#/$prefix}" >/dev/null
    reset_db "$sink" "$url"
    local report="$OUT/$name.json" state="$OUT/$name.db"
    rm -rf "$report" "$state"* "$OUT/$name.checkpoints"
    local live=(--epoch-ms "$ems")
    [ "$ems" = off ] && live=()
    "$BIN" -w 1 run --config "$(config "$sink")" --brokers "$BROKERS" --topic-prefix "$prefix" "--$sink" "$url" \
        --sqlite "$state" "${live[@]}" --epoch-records "$erec" --checkpoint-every "$every" --exit-when-idle --idle-timeout-ms 3000 \
        --latency-report "$report" -q >"$OUT/$name.run.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 120); do [ -f "$report" ] && break; sleep 0.5; done
    sleep 1
    local rate_args=() kv
    [ "$rate" -gt 0 ] && rate_args=(--rate "$rate")
    for kv in ${GEN_PROPERTIES:-}; do rate_args+=(--kafka-property "$kv"); done
    "$BIN" gen --brokers "$BROKERS" --topic-prefix "$prefix" --scale "$scale" "${rate_args[@]}" >"$OUT/$name.gen.log" 2>&1
    if ! wait "$pid"; then
        log "run $name failed:"; tail -5 "$OUT/$name.run.log" >&2; exit 1
    fi
    local behind
    behind=$(grep -o 'at most [0-9]* ms behind' "$OUT/$name.gen.log" | grep -o '[0-9]*' || echo 0)
    python3 - "$report" "$name" "$sink" "$scale" "$rate" "$ems" "$erec" "${behind:-0}" "$every" "$OUT/$name.run.log" <<'EOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
name, sink, scale, rate, ems, erec, behind, every, log = sys.argv[2:]
# "checkpoint at T: BYTES bytes in TOTAL ms (sources held HELD ms)", one line per checkpoint.
cps = [tuple(map(int, m)) for m in re.findall(r"checkpoint at \d+: (\d+) bytes in (\d+) ms \(sources held (\d+) ms\)", open(log, errors="replace").read())]
r.update(name=name, sink=sink, scale=int(scale), target_rate=int(rate), epoch_ms=ems if ems == "off" else int(ems), epoch_records=int(erec), gen_max_behind_ms=int(behind),
         checkpoint_every=every, checkpoints=len(cps), checkpoint_max_bytes=max([c[0] for c in cps], default=0),
         checkpoint_max_total_ms=max([c[1] for c in cps], default=0), checkpoint_max_held_ms=max([c[2] for c in cps], default=0))
print(json.dumps(r))
EOF
}

summarize() {  # JSON lines on stdin -> median line per group
    python3 -c '
import json, sys, statistics
rows = [json.loads(l) for l in sys.stdin if l.strip()]
def med(xs): return statistics.median(xs) if xs else None
groups = {}
for r in rows: groups.setdefault((r["sink"], r["label"], r["epoch_ms"], r["epoch_records"], r.get("checkpoint_every", "30s")), []).append(r)
for (sink, label, ems, erec, every), rs in groups.items():
    lat = lambda k: med([r["latency_ms"][k] for r in rs])
    out = dict(sink=sink, load=label, epoch_ms=ems, epoch_records=erec, runs=len(rs), target_rate=rs[0]["target_rate"],
               records=rs[0]["records"], sustained_records_per_s=round(med([r["sustained_records_per_s"] or 0 for r in rs])),
               p50_ms=lat("p50"), p99_ms=lat("p99"), p999_ms=lat("p999"), max_ms=lat("max"),
               read_p50_ms=med([r["read_latency_ms"]["p50"] for r in rs]), read_p99_ms=med([r["read_latency_ms"]["p99"] for r in rs]),
               gen_max_behind_ms=max(r["gen_max_behind_ms"] for r in rs), checkpoint_every=every,
               checkpoints=sum(r.get("checkpoints", 0) for r in rs), checkpoint_max_bytes=max(r.get("checkpoint_max_bytes", 0) for r in rs),
               checkpoint_max_total_ms=max(r.get("checkpoint_max_total_ms", 0) for r in rs),
               checkpoint_max_held_ms=max(r.get("checkpoint_max_held_ms", 0) for r in rs))
    print(json.dumps(out))
'
}

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
for sink in $SINKS; do
    fresh_broker
    if [ -z "${PEAK:-}" ]; then
        first=${EPOCHS%% *}
        line=$(run_one "peak_$sink" "$sink" "$PEAK_SCALE" 0 "${first%%:*}" "${first##*:}")
        echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); r["label"]="peak"; print(json.dumps(r))' >>"$RESULTS"
        peak=$(echo "$line" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["sustained_records_per_s"]))')
        log "$sink peak: $peak records/s"
    else
        peak=$PEAK
    fi
    for epoch in $EPOCHS; do
        fresh_broker
        pcts="${LOADS:-25 50 90}"
        [ "${epoch%%:*}" = off ] && pcts=50
        for pct in $pcts; do
            rate=$((peak * pct / 100))
            scale=$(( (rate * SECONDS_PER_RUN + 5000) / 10000 ))
            [ "$scale" -lt 1 ] && scale=1
            for run in $(seq 1 "$RUNS"); do
              for every in $CHECKPOINTS; do
                name="${sink}_${pct}_${epoch/:/_}_cp${every}_$run"
                log "$name: $rate records/s, scale $scale"
                line=$(run_one "$name" "$sink" "$scale" "$rate" "${epoch%%:*}" "${epoch##*:}" "$every")
                echo "$line" | python3 -c "import json,sys; r=json.load(sys.stdin); r['label']='${pct}%'; print(json.dumps(r))" >>"$RESULTS"
                echo "$line" | python3 -c '
import json, sys
r = json.load(sys.stdin); l = r["latency_ms"]
print("  %s: %d records, %.0f records/s sustained, p50 %d ms p99 %d ms p999 %d ms max %d ms (read p50 %d p99 %d ms; gen at most %d ms behind)"
      % (r["name"], r["records"], r["sustained_records_per_s"] or 0, l["p50"], l["p99"], l["p999"], l["max"],
         r["read_latency_ms"]["p50"], r["read_latency_ms"]["p99"], r["gen_max_behind_ms"]))' >&2
              done
            done
        done
    done
done
scripts/kafka-down.sh >/dev/null || true
scripts/kafka-up.sh >/dev/null

summarize <"$RESULTS" >"$OUT/summary.jsonl"
TEXT=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    epoch = "offset time" if r["epoch_ms"] == "off" else "epoch %s ms" % r["epoch_ms"]
    cp = "" if r.get("checkpoint_every", "30s") == "30s" else "checkpoints every %s (%d, at most %d bytes, %d ms, sources held at most %d ms), " % (
        r["checkpoint_every"], r["checkpoints"], r["checkpoint_max_bytes"], r["checkpoint_max_total_ms"], r["checkpoint_max_held_ms"])
    print(cp + "%-8s %4s  %-12s epoch_records %4d: target %6d/s, sustained %6d records/s (%d records, median of %d), latency p50 %s ms p99 %s ms p99.9 %s ms max %s ms (of which Kafka to source read: p50 %s ms p99 %s ms); gen <= %d ms behind schedule"
          % (r["sink"], r["load"], epoch, r["epoch_records"], r["target_rate"], r["sustained_records_per_s"], r["records"], r["runs"],
             r["p50_ms"], r["p99_ms"], r["p999_ms"], r["max_ms"], r["read_p50_ms"], r["read_p99_ms"], r["gen_max_behind_ms"]))
' "$OUT/summary.jsonl")
echo "$TEXT"
JSON=$(python3 -c '
import json, sys
print(json.dumps({"bench": "kafka_e2e", "seconds_per_run": int(sys.argv[2]), "rows": [json.loads(l) for l in open(sys.argv[1])]}))
' "$OUT/summary.jsonl" "$SECONDS_PER_RUN")
echo "$JSON"

if [ "${DOC:-1}" = 1 ]; then
    SECTION="docs/BENCHMARKS.e2e.md"
    {
        echo "## End to end: Kafka → MySQL (and PostgreSQL)"
        echo
        echo "Regenerated by \`scripts/bench-e2e.sh $SECONDS_PER_RUN $RUNS\` (SINKS=\"$SINKS\", EPOCHS=\"$EPOCHS\"${GEN_PROPERTIES:+, GEN_PROPERTIES=\"$GEN_PROPERTIES\"}) on $(date -u +%Y-%m-%d). Machine: $machine, shared by Apache Kafka $KAFKA_VERSION (one KRaft node), MariaDB 10.11, PostgreSQL 15, the generator, the program and other work; load average at the start: $load."
        echo
        echo "Each row: \`edu-rtdw gen --brokers $BROKERS --topic-prefix P --scale S [--rate R]\` (open loop, every record stamped with its scheduled send time) while \`edu-rtdw -w 1 run --config ROUTES --brokers $BROKERS --topic-prefix P --SINK URL --sqlite STATE --epoch-ms E --epoch-records N --exit-when-idle --idle-timeout-ms 3000 --latency-report FILE\` consumes (every table routed to SINK). Latency = commit of the record's logical time by the sink − the record's scheduled send time. Sustained = records / (last commit − first scheduled send). The load column is the share of the peak; the peak row's generator runs as fast as it can, so its latency only measures the backlog. \`offset time\`: no \`--epoch-ms\` (logical time from offsets alone, the behaviour before live epochs). Each run is about SECONDS long; the analysis is in \"End to end: what the latency is made of\" below."
        echo
        echo '```'
        echo "$TEXT"
        echo '```'
        echo
        echo '```json'
        echo "$JSON"
        echo '```'
        echo
    } >"$SECTION"
    # Splice into BENCHMARKS.md: replace the previous section, or put it before the profile.
    python3 scripts/splice-section.py "## End to end: Kafka → MySQL" "$SECTION" "## Profile"
    echo "wrote $SECTION and its section of docs/BENCHMARKS.md"
fi
