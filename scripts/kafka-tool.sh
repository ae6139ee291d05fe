#!/usr/bin/env bash
# Runs one of Apache Kafka's own tools from the classpath kafka-up.sh fetched (fetching it
# first when missing), against the broker on 127.0.0.1:9092 or any other.
#
#   scripts/kafka-tool.sh TOOL ARGS...
#
# TOOL is a fully qualified class name or one of these short names (Kafka's bin/*.sh):
#   topics              org.apache.kafka.tools.TopicCommand            (kafka-topics.sh)
#   console-consumer    org.apache.kafka.tools.consumer.ConsoleConsumer (kafka-console-consumer.sh)
#   console-producer    org.apache.kafka.tools.ConsoleProducer         (kafka-console-producer.sh)
#   producer-perf-test  org.apache.kafka.tools.ProducerPerformance     (kafka-producer-perf-test.sh)
#   consumer-perf-test  org.apache.kafka.tools.ConsumerPerformance     (kafka-consumer-perf-test.sh)
#   delete-records      org.apache.kafka.tools.DeleteRecordsCommand    (kafka-delete-records.sh)
#   consumer-groups     org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
#   get-offsets         org.apache.kafka.tools.GetOffsetShell          (kafka-get-offsets.sh)
#   storage             kafka.tools.StorageTool                        (kafka-storage.sh)
#   ensure-topics       scripts/KafkaTopics.java: BOOTSTRAP PARTITIONS WAIT_SECONDS TOPIC...
# e.g. scripts/kafka-tool.sh topics --bootstrap-server 127.0.0.1:9092 --list
set -euo pipefail
# shellcheck source=kafka-env.sh
source "$(dirname "$0")/kafka-env.sh"

if [ $# -eq 0 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi
tool=$1
shift
case "$tool" in
    topics) class=org.apache.kafka.tools.TopicCommand ;;
    console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    console-producer) class=org.apache.kafka.tools.ConsoleProducer ;;
    producer-perf-test) class=org.apache.kafka.tools.ProducerPerformance ;;
    consumer-perf-test) class=org.apache.kafka.tools.ConsumerPerformance ;;
    delete-records) class=org.apache.kafka.tools.DeleteRecordsCommand ;;
    consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
    storage) class=kafka.tools.StorageTool ;;
    ensure-topics) class="$KAFKA_SCRIPTS/KafkaTopics.java" ;;
    *) class=$tool ;;
esac
kafka_resolve
kafka_java_command
exec "${KAFKA_JAVA[@]}" "$class" "$@"
