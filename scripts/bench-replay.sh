#!/usr/bin/env bash
# File replay end to end into each sink (issue 21): records/s, rows/s and peak RSS,
# medians of RUNS interleaved runs, spliced into docs/BENCHMARKS.md.
#
#   scripts/bench-replay.sh [SCALE] [RUNS]      (defaults: 200 and 5)
#
# Input: `edu-rtdw gen --out DIR --scale SCALE --seed 1` (seeded; about 10k records per
# scale unit). Series, interleaved (run 1 of every series, then run 2, ...):
#   bench-w1     `edu-rtdw -w 1 bench --scale SCALE --runs 1`, pinned to core 0 (in memory, the reference)
#   none-w1      `run --sink none -w 1`, pinned to core 0 (every output discarded)
#   sqlite-w1    `run --sqlite FILE -w 1`, pinned to core 0
#   sqlite-w2    `run --sqlite FILE -w 2`
#   mysql-w1/w2, postgres-w1/w2: every table routed to that server (a fresh database per run),
#                with a SQLite state file beside
# Each run's time is the whole process (start, read, commit, exit), from /usr/bin/time; peak RSS
# is its maximum resident set. Rows = the rows the run leaves in the output tables.
# Needs MariaDB and PostgreSQL (scripts/db-up.sh). SERIES="..." runs a subset; DOC=0 does not
# rewrite docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-200}
RUNS=${2:-5}
SERIES=${SERIES:-"bench-w1 none-w1 sqlite-w1 sqlite-w2 mysql-w1 mysql-w2 postgres-w1 postgres-w2"}
BIN=target/release/edu-rtdw
OUT=${OUT:-target/bench-replay}
DB=edu_rtdw_replay
MYSQL_URL=mysql://edu:edu@127.0.0.1:3306/$DB
PG_URL=postgres://edu:edu@127.0.0.1:5432/$DB
export PATH="$HOME/.cargo/bin:$PATH"
log() { echo "bench-replay: $*" >&2; }

[ -x "$BIN" ] || cargo build --release --quiet --bin edu-rtdw
case "$SERIES" in *mysql*|*postgres*) scripts/db-up.sh >/dev/null ;; esac
rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN" gen --out "$OUT/input" --scale "$SCALE" --seed 1 >/dev/null
records=$(cat "$OUT"/input/*/* | wc -l)
load=$(cut -d' ' -f1-3 /proc/loadavg)
machine="$(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"

routes() {  # routes every output to sink $1
    local f="$OUT/$1.toml"
    {
        echo "[routes]"
        # The outputs of the registry (dataflows/src/output.rs), and the dead letters.
        for o in $(grep -oP '^\s+\w+ = "\K[a-z_0-9]+(?=" =>)' dataflows/src/output.rs) dead_letters; do echo "$o = [\"$1\"]"; done
    } >"$f"
    echo "$f"
}

# Drops database $2 of server $1 (PostgreSQL: once the last run's backends have gone) and creates it.
reset_db() {
    case "$1" in
        mysql) mariadb -h127.0.0.1 -uedu -pedu -e "DROP DATABASE IF EXISTS $2; CREATE DATABASE $2" ;;
        postgres)
            local tries=0
            until PGPASSWORD=edu psql -q -h 127.0.0.1 -U edu -d edu_rtdw -c "DROP DATABASE IF EXISTS $2" >/dev/null 2>&1; do
                tries=$((tries + 1)); [ "$tries" -lt 100 ] || { log "cannot drop $2"; exit 1; }; sleep 0.1
            done
            PGPASSWORD=edu psql -q -h 127.0.0.1 -U edu -d edu_rtdw -c "CREATE DATABASE $2" >/dev/null ;;
    esac
}

# Rows in the output tables of the SQLite file $1 (the edu_rtdw_* bookkeeping left out).
sqlite_rows() {
    python3 - "$1" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
names = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'edu_rtdw_%'")]
print(sum(c.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names))
EOF
}

# run_series NAME -> appends one JSON line to results.jsonl
run_series() {
    local name=$1 workers=${1##*-w} pin=() cmd=()
    [ "$workers" = 1 ] && pin=(taskset -c 0)
    local db="$OUT/$name.db"
    rm -f "$db"*
    case "$name" in
        bench-*) cmd=("$BIN" -w "$workers" bench --scale "$SCALE" --runs 1) ;;
        none-*) cmd=("$BIN" -w "$workers" run --input-dir "$OUT/input" --sink none -q) ;;
        sqlite-*) cmd=("$BIN" -w "$workers" run --input-dir "$OUT/input" --sqlite "$db" -q) ;;
        mysql-*|postgres-*)
            local sink=${name%-w*} url
            [ "$sink" = mysql ] && url=$MYSQL_URL || url=$PG_URL
            reset_db "$sink" "$DB"
            cmd=("$BIN" -w "$workers" run --input-dir "$OUT/input" --sqlite "$db" --config "$(routes "$sink")" "--$sink" "$url" -q) ;;
    esac
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$OUT/$name.time" "${pin[@]}" "${cmd[@]}" >"$OUT/$name.out" 2>"$OUT/$name.err" \
        || { log "$name failed:"; tail -5 "$OUT/$name.err" >&2; exit 1; }
    t1=$(date +%s.%N)
    local rss_kib rows=0
    rss_kib=$(tail -1 "$OUT/$name.time")
    case "$name" in sqlite-*) rows=$(sqlite_rows "$db") ;; esac
    # The harness measures its own dataflow time (without generating its input in memory).
    local own=0
    case "$name" in bench-*) own=$(tail -1 "$OUT/$name.out" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["all_metrics"][0]["records_per_s"]))') ;; esac
    python3 -c '
import json, sys
name, t0, t1, rss, rows, records, own = sys.argv[1:]
s = float(t1) - float(t0)
rate = int(own) if int(own) else round(int(records) / s)
print(json.dumps(dict(series=name, seconds=round(s, 3), records=int(records), records_per_s=rate,
                      rows=int(rows), peak_rss_mib=round(int(rss) / 1024))))' "$name" "$t0" "$t1" "$rss_kib" "$rows" "$records" "$own" \
        >>"$OUT/results.jsonl"
    log "$(tail -1 "$OUT/results.jsonl")"
}

: >"$OUT/results.jsonl"
for run in $(seq 1 "$RUNS"); do
    for s in $SERIES; do run_series "$s"; done
done

# Where the time goes: one perf profile of each kind of sink, self time by thread and symbol.
PROFILE_TEXT="(perf not installed, or PROFILE=0)"
if [ "${PROFILE:-1}" = 1 ] && command -v perf >/dev/null; then
    PROFILE_TEXT=""
    for sink in ${PROFILE_SINKS:-sqlite mysql}; do
        db="$OUT/profile-$sink.db"; rm -f "$db"*
        args=(run --input-dir "$OUT/input" --sqlite "$db" -q)
        if [ "$sink" != sqlite ]; then
            reset_db "$sink" "$DB"
            [ "$sink" = mysql ] && url=$MYSQL_URL || url=$PG_URL
            args+=(--config "$(routes "$sink")" "--$sink" "$url")
        fi
        perf record -q -F 499 -g -o "$OUT/perf-$sink.data" -- taskset -c 0 "$BIN" -w 1 "${args[@]}" >/dev/null 2>&1 || true
        PROFILE_TEXT+="--- file replay into $sink, -w 1 (self time; thread, shared object, symbol) ---"$'\n'
        PROFILE_TEXT+=$(perf report -i "$OUT/perf-$sink.data" --no-children --sort comm,dso,sym --percent-limit 1.5 \
            --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/ \+/ /g' | cut -c1-150 | head -25)
        PROFILE_TEXT+=$'\n'
    done
fi

TEXT=$(python3 - "$OUT/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
series = list(dict.fromkeys(r["series"] for r in rows))
out_rows = max((r["rows"] for r in rows), default=0)
med = {}
for s in series:
    rs = [r for r in rows if r["series"] == s]
    m = lambda k: statistics.median(r[k] for r in rs)
    med[s] = dict(series=s, runs=len(rs), seconds=m("seconds"), records_per_s=round(m("records_per_s")),
                  rows_per_s=round(out_rows / m("seconds")) if not s.startswith(("bench", "none")) else None,
                  peak_rss_mib=round(m("peak_rss_mib")), min_s=min(r["seconds"] for r in rs), max_s=max(r["seconds"] for r in rs))
for s in series:
    r = med[s]
    rows_s = "" if r["rows_per_s"] is None else ", %7d rows/s" % r["rows_per_s"]
    print("%-12s median %6.2f s (min %.2f, max %.2f, %d runs): %8d records/s%s, peak RSS %5d MiB"
          % (s, r["seconds"], r["min_s"], r["max_s"], r["runs"], r["records_per_s"], rows_s, r["peak_rss_mib"]))
def ratio(a, b):
    return round(med[a]["records_per_s"] / med[b]["records_per_s"], 3) if a in med and b in med else None
print("sqlite-w2 / sqlite-w1: %s;  none-w1 / bench-w1: %s;  output rows per run: %d" % (ratio("sqlite-w2", "sqlite-w1"), ratio("none-w1", "bench-w1"), out_rows))
EOF
)
echo "$TEXT"

if [ "${DOC:-1}" = 1 ]; then
    SECTION="$OUT/section.md"
    {
        echo "## End to end: file replay into each sink (issue 21)"
        echo
        echo "Regenerated by \`scripts/bench-replay.sh $SCALE $RUNS\` on $(date -u +%Y-%m-%d). Machine: $machine, shared with MariaDB 10.11 and PostgreSQL 15 (idle unless they are the sink); load average at the start: $load. Input: \`gen --scale $SCALE --seed 1\`, $records records. Each series is run $RUNS times, interleaved; the figures are medians. Time is the whole process (start to exit, the final commit included); \`-w 1\` series are pinned to one core with \`taskset -c 0\`; \`bench-w1\` is the in-memory harness over the same scale (its time includes generating the input in memory, so compare records/s only as an upper bound)."
        echo
        echo '```'
        echo "$TEXT"
        echo '```'
        echo
        echo "Profile (\`perf record -F 499 -g\`, $SCALE scale, one run each):"
        echo
        echo '```'
        echo "$PROFILE_TEXT"
        echo '```'
        echo
    } >"$SECTION"
    python3 scripts/splice-section.py "## End to end: file replay into each sink" "$SECTION" "## End to end: Kafka → MySQL"
    echo "wrote its section of docs/BENCHMARKS.md"
fi
