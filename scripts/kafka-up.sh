#!/usr/bin/env bash
# Starts Apache Kafka (one combined broker + KRaft controller node) on 127.0.0.1:9092 and
# creates the seven source topics and the two output topics. Idempotent: fetches the jars
# only when they are not cached, starts the broker only when none answers, creates only the
# topics that are missing.
#
#   scripts/kafka-up.sh [PARTITIONS]      (default 4)
#   EDU_RTDW_KAFKA_DIR   the broker's working directory: server.properties, kafka.log,
#                        kafka.pid, data/ (default /tmp/edu-rtdw-kafka)
#   EDU_RTDW_KAFKA_KEEP  1: keep the previous broker's data when starting (default: start empty)
#   EDU_RTDW_CACHE       where the jars are cached (default ~/.cache/edu-rtdw; see kafka-env.sh)
#
# The controller listens on 127.0.0.1:9093. The version is pom.xml's kafka.version.
set -euo pipefail
# shellcheck source=kafka-env.sh
source "$(dirname "$0")/kafka-env.sh"

PARTITIONS="${1:-4}"
BOOTSTRAP=127.0.0.1:9092
DATA="$KAFKA_DIR/data"

answers() { (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; }

write_properties() {
    cat >"$KAFKA_DIR/server.properties" <<PROPS
# Written by scripts/kafka-up.sh: a single node for tests and benchmarks, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
# Every topic is created explicitly (a misspelt topic is an error, not a new topic).
auto.create.topics.enable=false
num.partitions=$PARTITIONS
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# The generator stamps records with event times years in the past: time retention would
# delete them at once. Test data lives as long as the working directory.
log.retention.ms=-1
PROPS
}

# A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters).
cluster_id() { head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

start_broker() {
    mkdir -p "$KAFKA_DIR"
    if [ "${EDU_RTDW_KAFKA_KEEP:-0}" != 1 ]; then
        rm -rf "$DATA"
    fi
    write_properties
    if [ ! -f "$DATA/meta.properties" ]; then
        kafka_java kafka.tools.StorageTool format --cluster-id "$(cluster_id)" \
            --config "$KAFKA_DIR/server.properties" >/dev/null
    fi
    # Detached from this shell's terminal and pipes. No descriptor but stdio is inherited:
    # under `flock LOCK …` (how tests and scripts share the broker) the lock's descriptor
    # would otherwise keep the lock held for the broker's whole life.
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        KAFKA_JVM_OPTS="-Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20" KAFKA_LOG_LEVEL=INFO
        kafka_java_command
        exec setsid nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
            </dev/null >"$KAFKA_DIR/kafka.log" 2>&1
    ) &
    echo $! >"$KAFKA_DIR/kafka.pid"
    local pid i
    pid=$(cat "$KAFKA_DIR/kafka.pid")
    for ((i = 0; i < 240; i++)); do
        answers && break
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.25
    done
    if ! answers; then
        kafka_log "Apache Kafka did not start; see $KAFKA_DIR/kafka.log"
        tail -20 "$KAFKA_DIR/kafka.log" >&2 || true
        exit 1
    fi
    kafka_log "Apache Kafka $KAFKA_VERSION started (pid $pid, log $KAFKA_DIR/kafka.log)"
}

kafka_resolve
if answers; then
    kafka_log "a broker already answers on $BOOTSTRAP"
else
    start_broker
fi
# Waits (at most 60 s) until the broker answers a metadata request, then creates what is missing.
kafka_java "$KAFKA_SCRIPTS/KafkaTopics.java" "$BOOTSTRAP" "$PARTITIONS" 60 \
    timeline_client_topic blink_stg_activity__channel_name_dictionary_da qos_log agora_record \
    uc_account-student uc_account-user data_pack_order_info timeline_analysis_student edu_rtdw_dlq \
    | sed 's/^/kafka-up: /'
