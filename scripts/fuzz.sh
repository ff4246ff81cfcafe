#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of the parsers and translators in fuzz/.
#
#   scripts/fuzz.sh [--seconds N] [--no-asan] [TARGET...]   run each target (default: all) N s (default 30)
#   scripts/fuzz.sh --list                                  list the targets
#
# Stable rustc is enough: RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes. Builds go to
# fuzz/target; the corpus of each target grows in fuzz/corpus/<target>; a crash is saved under
# fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=30
sanitizer=address
targets=()
list=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --no-asan) sanitizer=none; shift ;;
        --list) list=1; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

all=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^nomyo-router-fuzz$')
if [ "$list" = 1 ]; then
    echo "$all"
    exit 0
fi
[ ${#targets[@]} -gt 0 ] || mapfile -t targets <<<"$all"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
root="$PWD"
logs="$root/fuzz/target/logs"
mkdir -p "$logs"
failed=()
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$all" || { echo "no fuzz target '$t' (see --list)" >&2; exit 2; }
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    echo "=== $t: ${seconds}s"
    log="$logs/$t.log"
    # -jobs=1 runs libFuzzer in a child whose output goes to fuzz-0.log in the working directory: keep
    # that inside fuzz/target, one directory per target (two runs at once must not share it).
    work="$logs/$t.work"
    mkdir -p "$work"
    set +e
    (cd "$work" && cargo fuzz run --fuzz-dir "$root/fuzz" --target-dir "$root/fuzz/target" \
        --sanitizer "$sanitizer" --debug-assertions "$t" "$root/fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -jobs=1 -print_final_stats=1) >"$log" 2>&1
    status=$?
    set -e
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|thread .* panicked|SUMMARY)' "$log" | sort -u || true
    if [ "$status" -ne 0 ]; then
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "!!! $t failed (exit $status); crash input: ${crash:-none written, see $log}" >&2
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found failures in: ${failed[*]}" >&2
    exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds}s without a crash"
