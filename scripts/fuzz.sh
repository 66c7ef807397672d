#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS_PER_TARGET
# (default 60) after one build, and prints per target: executions, coverage
# (libFuzzer's final cov and ft), new corpus entries, crashes.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Environment: FUZZ_LOCK, a file to hold (flock) for the build only, e.g.
# /tmp/cargo.lock on a shared machine; FUZZ_BUILD=0 runs the binaries as
# they are in fuzz/target; FUZZ_NICE, the niceness of the runs
# (default 19); FUZZ_LOGS, where each target's log goes (default
# fuzz/logs). A crash leaves its input under fuzz/artifacts/<target>/ and
# makes the script exit 1 after all targets ran. docs/FUZZING.md has a run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(ls fuzz/fuzz_targets | sed -n 's/\.rs$//p' | sort)
fi
logs="${FUZZ_LOGS:-fuzz/logs}"
mkdir -p "$logs"
export RUSTC_BOOTSTRAP=1 # cargo-fuzz's nightly flags on a stable toolchain
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

build=(cargo fuzz build)
if [ -n "${FUZZ_LOCK:-}" ]; then build=(flock "$FUZZ_LOCK" "${build[@]}"); fi
if [ "${FUZZ_BUILD:-1}" = 1 ]; then
    echo "== building ${#targets[@]} targets"
    start=$(date +%s)
    "${build[@]}"
    echo "   built in $(($(date +%s) - start)) s"
fi
# The runs use a copy of the binaries: a rebuild during a long run (the
# tree changing under it) changes nothing of it.
bin="$logs/bin"
mkdir -p "$bin"
for target in "${targets[@]}"; do
    cp fuzz/target/x86_64-unknown-linux-gnu/release/"$target" "$bin/"
done

failed=0
printf '%-18s %12s %8s %8s %8s %7s\n' target executions cov ft corpus crashes
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    before=$(ls "fuzz/artifacts/$target" | wc -l)
    log="$logs/$target.log"
    # One process (no -jobs/-workers); new inputs go to fuzz/corpus.
    nice -n "${FUZZ_NICE:-19}" "$bin/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 || true
    crashes=$(($(ls "fuzz/artifacts/$target" | wc -l) - before))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    printf '%-18s %12s %8s %8s %8s %7s\n' "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$crashes"
    if [ "$crashes" -gt 0 ] || ! grep -q '^Done [0-9]* runs' "$log"; then
        echo "   $target: see $log and fuzz/artifacts/$target/" >&2
        failed=1
    fi
done
exit "$failed"
