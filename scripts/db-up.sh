#!/usr/bin/env bash
# Starts MariaDB (127.0.0.1:3306) and PostgreSQL (127.0.0.1:5432) for edu-rtdw.
#
#   scripts/db-up.sh [mysql] [postgres]      (default: both)
#
# For each server: when nothing answers on its port, install it from Debian's
# packages if missing (apt-get update first), start it listening on loopback
# only, and wait until it answers (bounded polling). Then, idempotently, make
# sure the database `edu_rtdw` and the user `edu` / password `edu` (allowed
# from 127.0.0.1, may create databases named edu_rtdw*) exist, as in
# edu-rtdw.sample.toml. What this script started is recorded under
# $EDU_RTDW_DB_STATE (default /tmp/edu-rtdw-db) for scripts/db-down.sh.
# Runs as root without a TTY (CI); as another user it uses `sudo -n`.
set -euo pipefail

STATE="${EDU_RTDW_DB_STATE:-/tmp/edu-rtdw-db}"
mkdir -p "$STATE"

log() { echo "db-up: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Polls `$@` every half second, at most $TRIES times (default 120 = 60 s).
poll() {
    local i
    for ((i = 0; i < ${TRIES:-120}; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

apt_install() {
    if [ ! -e "$STATE/apt-updated" ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        touch "$STATE/apt-updated"
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 "$@" >/dev/null
}

# ---------------------------------------------------------------- MariaDB

mysql_root() {
    as_root mariadb --protocol=socket -uroot "$@"
}

mysql_start() {
    if ! command -v mariadbd >/dev/null 2>&1 && ! [ -x /usr/sbin/mariadbd ]; then
        apt_install mariadb-server mariadb-client
    fi
    # Loopback only, on the standard port, whatever the packaged defaults say.
    as_root mkdir -p /etc/mysql/mariadb.conf.d
    printf '[mysqld]\nbind-address = 127.0.0.1\nport = 3306\n' | as_root tee /etc/mysql/mariadb.conf.d/99-edu-rtdw.cnf >/dev/null
    touch "$STATE/started-mysql"
    if answers 3306; then return 0; fi   # the package's post-install may have started it
    log "starting MariaDB"
    if [ -x /etc/init.d/mariadb ]; then
        as_root /etc/init.d/mariadb start >/dev/null
    else
        as_root install -d -o mysql -g mysql /run/mysqld
        as_root sh -c 'mysqld_safe >/dev/null 2>&1 &'
    fi
}

mysql_setup() {
    TRIES=120 poll mysql_root -e 'SELECT 1' || { log "MariaDB does not answer"; return 1; }
    mysql_root <<'SQL'
CREATE DATABASE IF NOT EXISTS edu_rtdw CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'edu'@'127.0.0.1' IDENTIFIED BY 'edu';
CREATE USER IF NOT EXISTS 'edu'@'localhost' IDENTIFIED BY 'edu';
ALTER USER 'edu'@'127.0.0.1' IDENTIFIED BY 'edu';
ALTER USER 'edu'@'localhost' IDENTIFIED BY 'edu';
GRANT ALL PRIVILEGES ON `edu_rtdw%`.* TO 'edu'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `edu_rtdw%`.* TO 'edu'@'localhost';
FLUSH PRIVILEGES;
SQL
    TRIES=60 poll answers 3306 || { log "MariaDB is not listening on 127.0.0.1:3306"; return 1; }
    log "MariaDB ready: mysql://edu:***@127.0.0.1:3306/edu_rtdw"
}

# ------------------------------------------------------------- PostgreSQL

# "version cluster" of the first PostgreSQL cluster, creating one if there is none.
pg_cluster() {
    local found
    found="$(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 { print $1, $2 }')"
    if [ -z "$found" ]; then
        local version
        version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
        as_root pg_createcluster "$version" main -p 5432 >/dev/null
        found="$version main"
    fi
    echo "$found"
}

postgres_start() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        apt_install postgresql
    fi
    local version name
    read -r version name <<<"$(pg_cluster)"
    # Loopback only, on the standard port (Debian's postgresql.conf includes conf.d/).
    as_root mkdir -p "/etc/postgresql/$version/$name/conf.d"
    printf "listen_addresses = '127.0.0.1'\nport = 5432\n" | as_root tee "/etc/postgresql/$version/$name/conf.d/99-edu-rtdw.conf" >/dev/null
    echo "$version $name" >"$STATE/started-postgres"
    if answers 5432; then return 0; fi
    log "starting PostgreSQL $version/$name"
    as_root pg_ctlcluster "$version" "$name" start
}

postgres_setup() {
    TRIES=120 poll pg_isready -q -h 127.0.0.1 -p 5432 || { log "PostgreSQL does not answer"; return 1; }
    as_postgres psql -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'edu') THEN
    CREATE ROLE edu LOGIN CREATEDB PASSWORD 'edu';
  ELSE
    ALTER ROLE edu LOGIN CREATEDB PASSWORD 'edu';
  END IF;
END $$;
SQL
    if [ "$(as_postgres psql -tA -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'edu_rtdw'")" != 1 ]; then
        as_postgres psql -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE edu_rtdw OWNER edu'
    fi
    log "PostgreSQL ready: postgres://edu:***@127.0.0.1:5432/edu_rtdw"
}

# ------------------------------------------------------------------- main

servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(mysql postgres)
for server in "${servers[@]}"; do
    case "$server" in
        mysql)
            answers 3306 || mysql_start
            mysql_setup
            ;;
        postgres)
            answers 5432 || postgres_start
            postgres_setup
            ;;
        *) log "unknown server '$server' (expected mysql or postgres)"; exit 2 ;;
    esac
done
