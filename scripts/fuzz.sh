#!/usr/bin/env bash
# Runs the cargo-fuzz targets of this checkout for a bounded time, prints one summary line per
# target at the end, and exits non-zero if any target found a crash.
#
#   scripts/fuzz.sh [--parallel] [SECONDS] [TARGET...]    (defaults: 1800 seconds; meta matcher)
#
# Targets run one after another, or all at once with --parallel. On a shared machine run it as
# `nice -n 10 scripts/fuzz.sh ...`; set CARGO_TARGET_DIR to keep the ASan build elsewhere.
# Each target's logs are kept in fuzz/logs/<target>/: run.log (cargo-fuzz) and fuzz-0.log.
set -euo pipefail

parallel=0 seconds=1800 targets=()
for arg in "$@"; do
    case "$arg" in
        --parallel) parallel=1 ;;
        '' | *[!0-9]*) targets+=("$arg") ;;
        *) seconds="$arg" ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(meta matcher)

# cargo-fuzz passes nightly-only flags to rustc; RUSTC_BOOTSTRAP lets the stable toolchain take them.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz" && pwd)"
cd "$fuzz"

# Every target is built before any runs, so that the fuzzing time does not include compiling and
# parallel runs do not wait on each other's build lock.
for t in "${targets[@]}"; do cargo fuzz build "$t"; done

run() {
    local t="$1" max_len rc=0 crash=no extra=()
    case "$t" in
        meta) max_len=65536 ;;
        matcher) max_len=4096 ;;
        *) echo "$t: unknown target" >"logs/$t/summary"; return 1 ;;
    esac
    mkdir -p "corpus/$t"
    # Inputs that once failed are read as seeds, for the targets that have some.
    [ -d "regressions/$t" ] && extra=("$fuzz/regressions/$t")
    # With -jobs=1 libFuzzer writes its log to fuzz-0.log in the current folder, so each target
    # runs in a folder of its own, with absolute paths.
    (cd "logs/$t" && cargo fuzz run --fuzz-dir "$fuzz" "$t" "$fuzz/corpus/$t" "$fuzz/seeds/$t" "${extra[@]}" -- \
        -max_total_time="$seconds" -jobs=1 -workers=1 -max_len="$max_len" -timeout=10 \
        -dict="$fuzz/dicts/$t.dict" -print_final_stats=1) >"logs/$t/run.log" 2>&1 || rc=$?
    # A crash leaves its input in artifacts/<target>/ and makes libFuzzer exit non-zero.
    if [ "$rc" -ne 0 ] || [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then crash=yes; fi
    # The last "cov: ... ft: ..." line is libFuzzer's final state; the stat:: lines its totals.
    local execs covft
    execs=$(awk '/stat::number_of_executed_units:/ {n = $2} /stat::average_exec_per_sec:/ {r = $2}
        END {print "execs=" n + 0 " exec/s=" r + 0}' "logs/$t"/*.log)
    covft=$(awk '/ cov: .* ft: / {for (i = 1; i < NF; i++) {if ($i == "cov:") c = $(i + 1);
        if ($i == "ft:") f = $(i + 1)}} END {print "cov=" c + 0 " ft=" f + 0}' "logs/$t"/*.log)
    echo "$t: seconds=$seconds $execs $covft corpus=$(ls "corpus/$t" | wc -l) crash=$crash (exit $rc)" \
        >"logs/$t/summary"
    [ "$crash" = no ]
}

status=0 pids=()
for t in "${targets[@]}"; do
    rm -rf "logs/$t" && mkdir -p "logs/$t"
    if [ "$parallel" = 1 ]; then run "$t" & pids+=($!); else run "$t" || status=1; fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for t in "${targets[@]}"; do cat "logs/$t/summary"; done
exit "$status"
