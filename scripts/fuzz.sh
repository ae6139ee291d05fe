#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (issue 22): the JSON reader against its reference reader, and one
# message of each topic through ingestion.
#
#   scripts/fuzz.sh [RUNS] [TARGETS]     (defaults: 10000000 and "json_reader ingest_message")
#
# Built without a sanitizer (`--sanitizer none`: the code is safe Rust, panics are the
# findings, and it runs several times faster). Installs cargo-fuzz from crates.io when missing (needs the nightly toolchain, which rustup
# has here). The seed corpus is the generator's sample (`edu-rtdw gen --scale 1`, the first
# 300 lines of every topic, one file per line), written to fuzz/corpus/TARGET once; libFuzzer
# adds what it finds there. A crash is saved under fuzz/artifacts/TARGET/ and the script
# fails: keep it as a regression test (dataflows/src/json/tests.rs or tests/bad_input.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10000000}
TARGETS=${2:-"json_reader ingest_message"}
export PATH="$HOME/.cargo/bin:$PATH"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in $TARGETS; do
    corpus=fuzz/corpus/$target
    if [ ! -d "$corpus" ]; then
        mkdir -p "$corpus" target/fuzz-seed
        [ -d target/fuzz-seed/input ] || cargo run --quiet --release --bin edu-rtdw -- gen --out target/fuzz-seed/input --scale 1 --seed 9 >/dev/null
        n=0
        for f in target/fuzz-seed/input/*/0.jsonl; do
            head -n 300 "$f" | while IFS= read -r line; do
                n=$((n + 1))
                printf '%s' "$line" >"$corpus/$(basename "$(dirname "$f")")-$n"
            done
        done
    fi
    echo "fuzz: $target, $RUNS runs" >&2
    cargo +nightly fuzz run --sanitizer none "$target" "$corpus" -- -runs="$RUNS" -print_final_stats=1 2>&1 \
        | tee "target/fuzz-$target.log" | grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|^#[0-9]+ *DONE|SUMMARY|panicked" || true
    grep -q "^Done $RUNS runs" "target/fuzz-$target.log" || { echo "fuzz: $target did not finish its runs (see target/fuzz-$target.log)" >&2; exit 1; }
done
