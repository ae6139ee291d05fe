#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh machine.
#
# It installs and starts every server the tests need before running them:
# Apache Kafka (scripts/kafka-up.sh; its jars are fetched from Maven Central
# with mvn the first time, a few seconds, and cached outside the clone),
# MariaDB and PostgreSQL (scripts/db-up.sh, from Debian packages) and Debian's
# Chromium (scripts/chromium-up.sh, for the dashboard's browser test). The
# scripts are idempotent and reuse what is running or installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo is not installed" >&2
    exit 1
fi

# A CI build is never reused incrementally: skip the incremental caches (disk).
export CARGO_INCREMENTAL=0

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Apache Kafka for tests/kafka.rs, cluster.rs, observability.rs and sql_sinks.rs.
bash scripts/kafka-up.sh
# MariaDB and PostgreSQL for tests/sql_sinks.rs (installs them from Debian packages when missing;
# PostgreSQL's client psql is used by tests/sql.rs).
bash scripts/db-up.sh
# Debian's Chromium for tests/dashboard.rs (installed when missing).
bash scripts/chromium-up.sh
cargo test --workspace --locked
