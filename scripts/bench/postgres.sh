#!/usr/bin/env bash
# Section 8 of scripts/bench.sh: the same figures with the ledger in PostgreSQL on this machine.
# Run through scripts/with-postgres.sh (BILLING_TEST_PG_URL; bench.sh asks it for fsync=on, so
# commits are durable as on redb). Expects from bench.sh: BENCH_BIN, BENCH_TOOL, BENCH_WORK,
# BENCH_REPO, BENCH_TOTAL, BIG_USERS, DURATION (prefixed: with-postgres.sh has a `work` of its own).
set -euo pipefail
bin=${BENCH_BIN:?} tool=${BENCH_TOOL:?} work=${BENCH_WORK:?} repo=${BENCH_REPO:?} total=${BENCH_TOTAL:?}
: "${BIG_USERS:?}" "${DURATION:?}"
base=${BILLING_TEST_PG_URL%/*}
newdb() { psql "$BILLING_TEST_PG_URL" -qc "CREATE DATABASE $1"; echo "$base/$1"; }
pg_pid=""
stop_server() { [ -n "$pg_pid" ] && kill "$pg_pid" 2>/dev/null; wait "$pg_pid" 2>/dev/null || true; pg_pid=""; }
trap stop_server EXIT

echo "-- aggregate $total records into PostgreSQL (durable commits)"
url=$(newdb bench_aggregate)
"$tool" register --data-dir "$work/pg1" --ledger-url "$url" --users 1000 --prefix u- --width 4
/usr/bin/time -f "TIME elapsed_s=%e max_rss_kb=%M" -o "$work/pgtime1" \
  "$bin" aggregate --once --json --data-dir "$work/pg1" --repo "$repo" --ledger-url "$url" \
  > "$work/pgsummary1.json" 2>/dev/null
applied=$(grep -o '"records_applied": [0-9]*' "$work/pgsummary1.json" | grep -o '[0-9]*$')
elapsed=$(grep -o 'elapsed_s=[0-9.]*' "$work/pgtime1" | cut -d= -f2)
rss_kb=$(grep -o 'max_rss_kb=[0-9]*' "$work/pgtime1" | cut -d= -f2)
echo "FIGURE pg_aggregate_records=$applied elapsed_s=$elapsed records_per_s=$(echo "$applied / $elapsed" | bc) peak_rss_mb=$((rss_kb / 1024)) (target: >= 50000 records/s)"
"$bin" verify --ledger-url "$url" | head -1

echo "-- get_balance and list_users over HTTP, $BIG_USERS users in PostgreSQL"
url=$(newdb bench_users)
"$tool" register --data-dir "$work/pg3" --ledger-url "$url" --users "$BIG_USERS" --prefix b- --width 7
head -c 32 /dev/urandom | base64 > "$work/pgsecret"
"$bin" serve --data-dir "$work/pg3" --ledger-url "$url" --repo "$work/repo2" --interval 0 \
  --listen 127.0.0.1:0 --admin-secret-file "$work/pgsecret" > "$work/pgserve.out" 2>"$work/pgserve.err" &
pg_pid=$!
for _ in $(seq 300); do grep -q "listening on" "$work/pgserve.out" 2>/dev/null && break; sleep 0.1; done
server=$(grep -o 'http://[0-9.:]*' "$work/pgserve.out" | head -1)
secret=$(cat "$work/pgsecret")
BENCH_SECRET="$secret" BENCH_METHOD=get_balance BENCH_SIDS="$BIG_USERS" \
  wrk -t2 -c64 -d"$DURATION" -s scripts/bench/rpc.lua "$server" | grep BENCH \
  | sed 's/^BENCH/FIGURE pg_get_balance/; s/$/ (target: >= 10000 req\/s, p99 <= 10 ms)/'
BENCH_SECRET="$secret" BENCH_METHOD=list_users BENCH_PARAMS="{\"cursor\":\"b-$(printf %07d $((BIG_USERS / 2)))\",\"limit\":100}" \
  wrk -t2 -c16 -d"$DURATION" -s scripts/bench/rpc.lua "$server" | grep BENCH \
  | sed 's/^BENCH/FIGURE pg_list_users_100/; s/$/ (target: p99 <= 20 ms)/'
stop_server
