#!/usr/bin/env bash
# Chaos runs (issue 22): tests/chaos.rs over many seeds.
#
#   scripts/chaos.sh [SEEDS] [STEPS]     (defaults: 20 seeds, 12 steps each)
#
# Each seed is a seeded random sequence of STEPS actions over a live Kafka run (SIGKILL
# and restart the job, restart the broker, restart or SIGSTOP MariaDB/PostgreSQL, produce
# more input, wait for a checkpoint); at the end every sink must equal a file replay of the
# same input. Starts the broker and the databases it needs. Seeds 1..SEEDS; a failing seed
# is named in the test's panic, and `EDU_RTDW_CHAOS_SEEDS=N scripts/chaos.sh` reruns one.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-20}
STEPS=${2:-12}
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/kafka-up.sh >/dev/null
bash scripts/db-up.sh >/dev/null
export EDU_RTDW_CHAOS_SEEDS=${EDU_RTDW_CHAOS_SEEDS:-$(seq -s ' ' 1 "$SEEDS")}
export EDU_RTDW_CHAOS_STEPS=$STEPS
started=$(date +%s)
mkdir -p target
status=0
cargo test --locked --test chaos -- --nocapture >target/chaos.log 2>&1 || status=$?
grep -E "^chaos seed|test result|panicked|FAILED" target/chaos.log || true
echo "chaos: seeds $EDU_RTDW_CHAOS_SEEDS, $STEPS steps each, in $(( $(date +%s) - started )) s (log: target/chaos.log)"
exit "$status"
