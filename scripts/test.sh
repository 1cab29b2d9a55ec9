#!/usr/bin/env bash
# The project's test command (README "Run the tests"): every Rust test of the
# workspace, then the end-to-end scripts on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

# Under a throwaway PostgreSQL (BILLING_TEST_PG_URL), for the tests of the PostgreSQL ledger.
scripts/with-postgres.sh cargo test --workspace --all-targets

# End-to-end scenarios that start real processes.
for script in scripts/smoke_aggregate.sh scripts/tui_e2e.sh; do
    [ -x "$script" ] || { echo "test.sh: $script is missing or not executable" >&2; exit 1; }
    echo "== $script"
    "$script"
done
