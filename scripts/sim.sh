#!/usr/bin/env bash
# Deterministic simulation of the aggregator against its model (sim/).
#   scripts/sim.sh --seed 123456 [--steps 200] [--trace]   replay one seed
#   scripts/sim.sh --seeds 100000 [--steps 200] [--jobs N]  a campaign on all cores
#   add --backend postgres to run on PostgreSQL (a throwaway cluster is started
#   when BILLING_TEST_PG_URL is not set)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p billing-sim --bin sim
bin="$(pwd)/target/release/sim"
if [[ " $* " == *" postgres "* && -z "${BILLING_TEST_PG_URL:-}" ]]; then
  exec scripts/with-postgres.sh "$bin" "$@"
fi
exec "$bin" "$@"
