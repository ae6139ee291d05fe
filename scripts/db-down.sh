#!/usr/bin/env bash
# Stops the database servers that scripts/db-up.sh started.
#
#   scripts/db-down.sh [--force] [mysql] [postgres]      (default: both)
#
# Without --force only a server that db-up.sh started (recorded under
# $EDU_RTDW_DB_STATE, default /tmp/edu-rtdw-db) is stopped; with --force the
# server on the standard port is stopped whoever started it (the outage test
# uses this, then `scripts/db-up.sh <server>` to start it again). Waits
# (bounded polling) until the port no longer answers.
set -euo pipefail

STATE="${EDU_RTDW_DB_STATE:-/tmp/edu-rtdw-db}"

log() { echo "db-down: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits (at most 60 s) until nothing answers on port $1.
wait_closed() {
    local i
    for ((i = 0; i < 120; i++)); do
        answers "$1" || return 0
        sleep 0.5
    done
    log "port $1 still answers"
    return 1
}

mysql_stop() {
    if [ -x /etc/init.d/mariadb ]; then
        as_root /etc/init.d/mariadb stop >/dev/null
    else
        as_root mariadb-admin --protocol=socket -uroot shutdown
    fi
    wait_closed 3306
    rm -f "$STATE/started-mysql"
    log "MariaDB stopped"
}

postgres_stop() {
    local version name
    if [ -s "$STATE/started-postgres" ]; then
        read -r version name <"$STATE/started-postgres"
    else
        read -r version name <<<"$(pg_lsclusters -h | awk '$3 == 5432 { print $1, $2; exit }')"
    fi
    as_root pg_ctlcluster "$version" "$name" stop -m fast
    wait_closed 5432
    rm -f "$STATE/started-postgres"
    log "PostgreSQL stopped"
}

force=0
servers=()
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        mysql | postgres) servers+=("$arg") ;;
        *) log "unknown argument '$arg' (expected --force, mysql or postgres)"; exit 2 ;;
    esac
done
[ ${#servers[@]} -gt 0 ] || servers=(mysql postgres)
for server in "${servers[@]}"; do
    if [ "$force" = 1 ] || [ -e "$STATE/started-$server" ]; then
        if answers "$([ "$server" = mysql ] && echo 3306 || echo 5432)"; then
            "${server}_stop"
        else
            rm -f "$STATE/started-$server"
        fi
    fi
done
