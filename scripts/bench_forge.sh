#!/usr/bin/env bash
# Request counts and wall times of one aggregation pass over the Forgejo API:
# the forge source's plan (branch head, git/trees, new git/blobs only) against
# the seed's per-node commits algorithm (reference), on the same emulated repo
# of BENCH_NODES nodes × BENCH_FILES hourly files with one new file per node.
# Release build, loopback only; prints a Markdown table (also into $BENCH_OUT).
#   scripts/bench_forge.sh                  # 1,000 nodes × 720 files (the README figures)
#   BENCH_QUICK=1 scripts/bench_forge.sh    # 100 nodes × 72 files, a check of the script itself
set -euo pipefail
cd "$(dirname "$0")/.."

command -v git >/dev/null || (apt-get update -qq && apt-get install -y -qq git)

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    export BENCH_NODES=${BENCH_NODES:-100} BENCH_FILES=${BENCH_FILES:-72}
else
    export BENCH_NODES=${BENCH_NODES:-1000} BENCH_FILES=${BENCH_FILES:-720}
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
export BENCH_OUT="$out"

echo "== forge request plan vs reference: $BENCH_NODES nodes x $BENCH_FILES files, one new file per node"
cargo test --release -q -p rpc-server --test forge_bench -- --ignored --nocapture \
    bench_steady_state_pass_full_scale
echo
cat "$out"
