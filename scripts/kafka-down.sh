#!/usr/bin/env bash
# Stops the broker started by scripts/kafka-up.sh (its data stays in the working directory).
set -euo pipefail
DIR="${EDU_RTDW_KAFKA_DIR:-/tmp/edu-rtdw-kafka}"
if [ -f "$DIR/tansu.pid" ]; then
    pid=$(cat "$DIR/tansu.pid")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        # tansu does not always exit on SIGTERM.
        kill -9 "$pid" 2>/dev/null || true
        echo "kafka-down: stopped tansu (pid $pid)"
    fi
    rm -f "$DIR/tansu.pid"
else
    echo "kafka-down: no broker started by kafka-up.sh"
fi
