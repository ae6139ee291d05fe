#!/usr/bin/env bash
# Stops the broker started by scripts/kafka-up.sh: SIGTERM (a clean shutdown), at most 30 s,
# then SIGKILL. Its data stays in the working directory.
set -euo pipefail
DIR="${EDU_RTDW_KAFKA_DIR:-/tmp/edu-rtdw-kafka}"
if [ -f "$DIR/kafka.pid" ]; then
    pid=$(cat "$DIR/kafka.pid")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -9 "$pid" 2>/dev/null; then
            echo "kafka-down: Apache Kafka (pid $pid) ignored SIGTERM for 30 s: killed"
        else
            echo "kafka-down: stopped Apache Kafka (pid $pid)"
        fi
    fi
    rm -f "$DIR/kafka.pid"
else
    echo "kafka-down: no broker started by kafka-up.sh"
fi
