#!/usr/bin/env bash
# Starts a Kafka-protocol broker (tansu, sqlite storage) on 127.0.0.1:9092 and
# creates the seven source topics and the two output topics. Idempotent:
# installs tansu only when missing, starts it only when nothing answers.
#
#   scripts/kafka-up.sh [PARTITIONS]      (default 4)
#   EDU_RTDW_KAFKA_DIR   working directory of the broker (default /tmp/edu-rtdw-kafka)
#   EDU_RTDW_KAFKA_KEEP  1: keep the previous broker's data when starting (default: start empty;
#                        tansu's sqlite storage slows down as test topics accumulate)
set -euo pipefail

PARTITIONS="${1:-4}"
DIR="${EDU_RTDW_KAFKA_DIR:-/tmp/edu-rtdw-kafka}"
BROKER="tcp://127.0.0.1:9092"
export PATH="$HOME/.cargo/bin:$PATH"

answers() { (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; }

if ! command -v tansu >/dev/null 2>&1; then
    echo "kafka-up: installing tansu (cargo install tansu --locked --features libsql; takes 10-20 minutes)"
    cargo install tansu --version 0.6.0 --locked --features libsql
fi

if answers; then
    echo "kafka-up: a broker already answers on 127.0.0.1:9092"
else
    mkdir -p "$DIR"
    if [ "${EDU_RTDW_KAFKA_KEEP:-0}" != 1 ]; then
        rm -f "$DIR"/tansu.db "$DIR"/tansu.db-wal "$DIR"/tansu.db-shm
    fi
    # tansu reads a .env file from its working directory: start it from a clean one, with a
    # relative sqlite path, detached from this shell's terminal and pipes.
    # No descriptor but stdio is inherited: under `flock LOCK …` (how tests and scripts share the
    # broker) the lock's descriptor would otherwise keep the lock held for the broker's whole life.
    pushd "$DIR" >/dev/null
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        exec setsid nohup tansu broker \
            --listener-url "$BROKER" \
            --advertised-listener-url "$BROKER" \
            --storage-engine sqlite://tansu.db </dev/null >"$DIR/tansu.log" 2>&1
    ) &
    echo $! >"$DIR/tansu.pid"
    popd >/dev/null
    for _ in $(seq 1 120); do
        answers && break
        sleep 0.5
    done
    if ! answers; then
        echo "kafka-up: tansu did not start; see $DIR/tansu.log" >&2
        tail -20 "$DIR/tansu.log" >&2 || true
        exit 1
    fi
    echo "kafka-up: tansu started (pid $(cat "$DIR/tansu.pid"), log $DIR/tansu.log)"
fi

# tansu 0.6's sqlite schema has no index on `header (topition, offset_id)`, and a fetch looks up
# each record's headers: every fetched record scanned the whole header table. Our output topics
# carry headers, so reading them back after a crash (tests/kafka.rs) grew quadratically with the
# stored records until the broker seemed hung (a CI run timed out there). The index is idempotent
# and invisible to tansu; sqlite re-prepares tansu's statements when the schema changes.
index_headers() {
    [ -f "$DIR/tansu.db" ] || return 0
    python3 - "$DIR/tansu.db" <<'PY' || echo "kafka-up: could not index tansu's header table (fetches stay slow)" >&2
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60)
if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'header'").fetchone():
    db.execute("CREATE INDEX IF NOT EXISTS edu_rtdw_header_record ON header (topition, offset_id)")
    db.commit()
PY
}

create_topic() {
    local name="$1" partitions="$2"
    if out=$(tansu topic create "$name" --partitions "$partitions" --broker "$BROKER" 2>&1); then
        echo "kafka-up: created topic $name ($partitions partitions)"
    else
        case "$out" in
            *xists*|*EXISTS*) ;;
            *) echo "kafka-up: topic $name: $out" >&2 ;;
        esac
    fi
}

for topic in timeline_client_topic blink_stg_activity__channel_name_dictionary_da qos_log agora_record \
             uc_account-student uc_account-user data_pack_order_info timeline_analysis_student edu_rtdw_dlq; do
    create_topic "$topic" "$PARTITIONS"
done
index_headers
