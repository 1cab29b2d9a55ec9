#!/usr/bin/env bash
# Measures the performance figures of the README (release build, loopback only).
#   BENCH_QUICK=1 scripts/bench.sh   — smaller sizes, for a smoke check of the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"; fi

cargo build --release -q -p rpc-server --bin rpc-server --example bench_ledger
cargo build --release -q -p billing-api --example decode_bench
cargo build --release -q -p tui-admin --examples
bin="$root/target/release/rpc-server"
tool="$root/target/release/examples/bench_ledger"

work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  NODES=10 HOURS=10 RECORDS=100 NOOP_NODES=100 BIG_USERS=10000 DURATION=3s
else
  NODES=100 HOURS=100 RECORDS=100 NOOP_NODES=1000 BIG_USERS=1000000 DURATION=10s
fi
total=$((NODES * HOURS * RECORDS))

echo "== 1. aggregate $total records ($NODES nodes x $HOURS files x $RECORDS records) from a local repo, durable commits"
t0=$(date +%s.%N)
"$bin" simulate --repo "$work/repo" --nodes "$NODES" --hours "$HOURS" --records "$RECORDS" --users 1000 --seed 1 >/dev/null
t1=$(date +%s.%N)
echo "simulate: $(echo "$t1 - $t0" | bc) s"
"$tool" register --data-dir "$work/d1" --users 1000 --prefix u- --width 4
/usr/bin/time -f "TIME elapsed_s=%e max_rss_kb=%M" -o "$work/time1" \
  "$bin" aggregate --once --json --data-dir "$work/d1" --repo "$work/repo" > "$work/summary1.json" 2>/dev/null
applied=$(grep -o '"records_applied": [0-9]*' "$work/summary1.json" | grep -o '[0-9]*$')
elapsed=$(grep -o 'elapsed_s=[0-9.]*' "$work/time1" | cut -d= -f2)
rss_kb=$(grep -o 'max_rss_kb=[0-9]*' "$work/time1" | cut -d= -f2)
echo "FIGURE aggregate_records=$applied elapsed_s=$elapsed records_per_s=$(echo "$applied / $elapsed" | bc) peak_rss_mb=$((rss_kb / 1024)) (targets: >= 200000 records/s, <= 150 MB)"

echo "== 2. a pass with nothing new over $NOOP_NODES nodes"
"$bin" simulate --repo "$work/repo2" --nodes "$NOOP_NODES" --hours 2 --records 2 --users 10 --seed 2 >/dev/null
"$tool" noop-pass --data-dir "$work/d2" --repo "$work/repo2" --runs 50

echo "== 3. get_balance and list_users over HTTP on loopback, $BIG_USERS users"
"$tool" register --data-dir "$work/d3" --users "$BIG_USERS" --prefix b- --width 7
head -c 32 /dev/urandom | base64 > "$work/secret"
"$bin" serve --data-dir "$work/d3" --repo "$work/repo2" --interval 0 --listen 127.0.0.1:0 \
  --admin-secret-file "$work/secret" > "$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)
secret=$(cat "$work/secret")
echo "get_balance (64 connections, $DURATION, random users):"
BENCH_SECRET="$secret" BENCH_METHOD=get_balance BENCH_SIDS="$BIG_USERS" \
  wrk -t2 -c64 -d"$DURATION" -s scripts/bench/rpc.lua "$url" | grep BENCH | sed 's/^BENCH/FIGURE get_balance/'
echo "list_users page of 100 from the middle (16 connections, $DURATION):"
BENCH_SECRET="$secret" BENCH_METHOD=list_users BENCH_PARAMS="{\"cursor\":\"b-$(printf %07d $((BIG_USERS / 2)))\",\"limit\":100}" \
  wrk -t2 -c16 -d"$DURATION" -s scripts/bench/rpc.lua "$url" | grep BENCH | sed 's/^BENCH/FIGURE list_users_100/'
echo "dashboard memory against $BIG_USERS users:"
BENCH_URL="$url" BILLING_ADMIN_SECRET="$secret" "$root/target/release/examples/dashboard_rss"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

echo "== 4. OTOML decoding, one thread"
"$root/target/release/examples/decode_bench"

for extra in scripts/bench_forge.sh; do
  if [ -x "$extra" ]; then echo "== $extra"; "$extra"; fi
done
echo "== dashboard redraw"
"$root/target/release/examples/redraw_bench"
