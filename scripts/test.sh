#!/usr/bin/env bash
# The project's test command (README "Run the tests"): every Rust test of the
# workspace, then the end-to-end scripts on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

# The export test reads CSV back with Python's csv module; the metrics test and
# check-monitoring.sh check the Prometheus output and rules with promtool.
need=()
command -v python3 >/dev/null || need+=(python3)
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# The monitoring assets in docs/ (alert rules and their unit tests, the Grafana dashboard).
scripts/check-monitoring.sh

# Under a throwaway PostgreSQL (BILLING_TEST_PG_URL), for the tests of the PostgreSQL ledger.
scripts/with-postgres.sh cargo test --workspace --all-targets

# End-to-end scenarios that start real processes, under one throwaway PostgreSQL too:
# smoke_aggregate.sh runs its scenario on redb and on PostgreSQL, failover.sh kills a
# replica in the middle of a pass (each creates databases of its own there).
e2e=(scripts/smoke_aggregate.sh scripts/tui_e2e.sh scripts/failover.sh)
for script in "${e2e[@]}"; do
    [ -x "$script" ] || { echo "test.sh: $script is missing or not executable" >&2; exit 1; }
done
scripts/with-postgres.sh bash -c 'set -euo pipefail
    for script in "$@"; do
        echo "== $script"
        "$script"
    done' e2e "${e2e[@]}"
