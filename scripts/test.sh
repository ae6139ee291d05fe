#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh machine.
#
# It starts every server the tests need before running them. Today the suite
# needs none: the core (file replay into SQLite) runs embedded. The Kafka
# broker (scripts/kafka-up.sh) and MariaDB/PostgreSQL (scripts/db-up.sh) are
# started here as soon as tests against them exist.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo is not installed" >&2
    exit 1
fi

cargo clippy --workspace --all-targets --locked -- -D warnings
# MariaDB and PostgreSQL for tests/sql_sinks.rs (installs them from Debian packages when missing).
bash scripts/db-up.sh
cargo test --workspace --locked
