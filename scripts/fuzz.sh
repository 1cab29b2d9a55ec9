#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers with cargo fuzz (libFuzzer, nightly toolchain).
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 60), all by default
# Inputs found are kept in fuzz/work/<target>/ (not committed; the committed seeds are in
# fuzz/corpus/<target>/ and are only read). A crash stops the run, leaves its input in
# fuzz/artifacts/<target>/, and prints how to replay it; copy that input into
# fuzz/regressions/<target>/ so that the corpus replay test (cargo test, stable) keeps it.
# FUZZ_MAX_LEN=N caps the input length (libFuzzer's -max_len; by default the largest seed's):
# the OTOML decoder runs about ten times as many inputs a second at 2048 bytes as at 25 KiB.
# Prints one line per target: FUZZ target=… seconds=… executions=… execs_per_s=…
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: cargo fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

cd fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
for target in "${targets[@]}"; do
    mkdir -p "work/$target" "artifacts/$target"
    log="work/$target.log"
    # No sanitizer: AddressSanitizer's quarantine alone passes the 256 MB limit, which is meant
    # for the target's own memory (for a sanitizer run: cargo +nightly fuzz run TARGET in fuzz/).
    if ! cargo +nightly fuzz run --sanitizer none "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=256 -print_final_stats=1 \
        ${FUZZ_MAX_LEN:+-max_len="$FUZZ_MAX_LEN"} >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz.sh: $target failed; the input is in fuzz/artifacts/$target/ (replay: cargo +nightly fuzz run --sanitizer none $target <file>)" >&2
        exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    echo "FUZZ target=$target seconds=$seconds executions=${execs:-0} execs_per_s=$(( ${execs:-0} / seconds ))"
done
