# Sourced by kafka-up.sh and kafka-tool.sh (not run): where the Apache Kafka jars are cached,
# how to fetch them, and how to run a class from them.
#
#   EDU_RTDW_CACHE      cache outside the clone (default ~/.cache/edu-rtdw); the jars of
#                       Kafka VERSION are in $EDU_RTDW_CACHE/kafka-VERSION/libs
#   EDU_RTDW_KAFKA_DIR  the broker's working directory (default /tmp/edu-rtdw-kafka)

KAFKA_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The version tested is the one in pom.xml.
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_SCRIPTS/pom.xml")"
KAFKA_LIBS="${EDU_RTDW_CACHE:-$HOME/.cache/edu-rtdw}/kafka-$KAFKA_VERSION/libs"
KAFKA_DIR="${EDU_RTDW_KAFKA_DIR:-/tmp/edu-rtdw-kafka}"

kafka_log() { echo "kafka: $*" >&2; }

# Installs Java and Maven from Debian's packages when missing (a fresh machine).
kafka_install_java() {
    command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 && return 0
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    kafka_log "installing Java 17 and Maven (apt-get)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 \
        openjdk-17-jre-headless maven >/dev/null
}

# Fetches the broker's and tools' jars (pom.xml) into $KAFKA_LIBS unless they are there.
# The jars land in a scratch directory renamed into place at the end, so an interrupted
# fetch is never taken for a complete one.
kafka_resolve() {
    kafka_install_java
    [ -d "$KAFKA_LIBS" ] && return 0
    local scratch="$KAFKA_LIBS.partial.$$" started=$SECONDS
    mkdir -p "$(dirname "$KAFKA_LIBS")"
    rm -rf "$scratch"
    kafka_log "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIBS"
    mvn -q -B -f "$KAFKA_SCRIPTS/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$scratch" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
    # Another script may have finished the same fetch meanwhile: keep its copy.
    mv -T "$scratch" "$KAFKA_LIBS" 2>/dev/null || rm -rf "$scratch"
    kafka_log "fetched $(ls "$KAFKA_LIBS" | wc -l) jars in $((SECONDS - started)) s"
}

# Sets KAFKA_JAVA to the command line `java OPTIONS -cp CLASSPATH` of Kafka's classpath,
# logging at $KAFKA_LOG_LEVEL (default WARN) to stderr, with the JVM options of
# $KAFKA_JVM_OPTS (default a 512 MiB heap).
kafka_java_command() {
    # shellcheck disable=SC2206
    KAFKA_JAVA=(java ${KAFKA_JVM_OPTS:--Xmx512m} -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$KAFKA_SCRIPTS/kafka-log4j2.properties"
        -Dedu_rtdw.kafka.log.level="${KAFKA_LOG_LEVEL:-WARN}"
        -cp "$KAFKA_LIBS/*")
}

# Runs `java CLASS ARGS...` on Kafka's classpath (see kafka_java_command).
kafka_java() {
    kafka_java_command
    "${KAFKA_JAVA[@]}" "$@"
}
