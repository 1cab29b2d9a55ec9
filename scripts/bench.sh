#!/usr/bin/env bash
# Measures the performance figures of the README (release build, loopback only).
#   BENCH_QUICK=1 scripts/bench.sh   — smaller sizes, for a smoke check of the script itself
#   BENCH_ONLY=1,5 scripts/bench.sh  — only the numbered sections (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v bc >/dev/null || need+=(bc)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"; fi

# One build for everything: separate builds of these packages unify features differently and
# would rebuild the shared crates each time.
cargo build --release -q -p rpc-server -p billing-api -p tui-admin --bins --examples
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
want() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }
ledger_bytes() { stat -c %s "$1/ledger.redb"; }

if want 1 || want 6 || want 9; then
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
echo "FIGURE aggregate_records=$applied elapsed_s=$elapsed records_per_s=$(echo "$applied / $elapsed" | bc) peak_rss_mb=$((rss_kb / 1024)) (targets: >= 250000 records/s, <= 150 MB)"
fi

if want 2; then
echo "== 2. a pass with nothing new over $NOOP_NODES nodes"
"$bin" simulate --repo "$work/repo2" --nodes "$NOOP_NODES" --hours 2 --records 2 --users 10 --seed 2 >/dev/null
"$tool" noop-pass --data-dir "$work/d2" --repo "$work/repo2" --runs 50
fi

if want 3; then
echo "== 3. get_balance and list_users over HTTP on loopback, $BIG_USERS users"
[ -d "$work/repo2" ] || "$bin" simulate --repo "$work/repo2" --nodes 2 --hours 2 --records 2 --users 10 --seed 2 >/dev/null
"$tool" register --data-dir "$work/d3" --users "$BIG_USERS" --prefix b- --width 7
head -c 32 /dev/urandom | base64 > "$work/secret"
"$bin" serve --data-dir "$work/d3" --repo "$work/repo2" --interval 0 --listen 127.0.0.1:0 \
  --admin-secret-file "$work/secret" > "$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
# Up to 60 s for the server to listen; stop at once if it exited.
for _ in $(seq 600); do
  grep -q "listening on" "$work/serve.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { echo "bench: rpc-server serve exited before listening:" >&2; cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -1)
[ -n "$url" ] || { echo "bench: rpc-server serve did not listen within 60 s; its log:" >&2; cat "$work/serve.err" >&2; exit 1; }
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
fi

if want 4; then
echo "== 4. OTOML decoding, one thread"
"$root/target/release/examples/decode_bench"
fi

if want 5; then
echo "== 5. hostile usage files: one file each, aggregate --once"
# One commit of one file into a fresh repo; prints nothing.
one_file_repo() { # repo node file-generator
  git init -q -b main "$1"
  mkdir -p "$1/nodes/$2"
  "$3" > "$1/nodes/$2/usage_2026-01-01-00.otoml"
  git -C "$1" add -A
  git -C "$1" -c user.name=bench -c user.email=bench@localhost commit -q -m "$2"
}
# ~15 MB: a million records with nothing but a cost (each invalid: no key, user or node).
invalid_file() { awk -v n="$HOSTILE_RECORDS" 'BEGIN { printf "records = ["; for (i = 0; i < n; i++) printf "{cost_cents=1},"; print "]" }'; }
# Valid records of one unregistered user, up to 16 MiB (the default file limit).
held_file() { awk -v n="$HELD_RECORDS" 'BEGIN { print "records = ["; for (i = 0; i < n; i++) printf "{idempotency_key=\"k%07d\",user_sid=\"newcomer\",node_name=\"bomb1\",cost_cents=1},\n", i; print "]" }'; }
hostile() { # name node generator
  one_file_repo "$work/$1-repo" "$2" "$3"
  "$tool" register --data-dir "$work/$1" --users 10 --prefix u- --width 4
  local before; before=$(ledger_bytes "$work/$1")
  /usr/bin/time -f "TIME elapsed_s=%e max_rss_kb=%M" -o "$work/$1.time" \
    "$bin" aggregate --once --json --data-dir "$work/$1" --repo "$work/$1-repo" > "$work/$1.json" 2>/dev/null
  local size rss elapsed after
  size=$(stat -c %s "$work/$1-repo/nodes/$2/usage_2026-01-01-00.otoml")
  rss=$(grep -o 'max_rss_kb=[0-9]*' "$work/$1.time" | cut -d= -f2)
  elapsed=$(grep -o 'elapsed_s=[0-9.]*' "$work/$1.time" | cut -d= -f2)
  after=$(ledger_bytes "$work/$1")
  echo "FIGURE hostile_$1 file_bytes=$size records_invalid=$(grep -o '"records_invalid": [0-9]*' "$work/$1.json" | grep -o '[0-9]*$') records_pending=$(grep -o '"records_pending": [0-9]*' "$work/$1.json" | grep -o '[0-9]*$') elapsed_s=$elapsed peak_rss_mb=$((rss / 1024)) ledger_growth_bytes=$((after - before))"
}
if [ "${BENCH_QUICK:-0}" = 1 ]; then HOSTILE_RECORDS=100000 HELD_RECORDS=20000; else HOSTILE_RECORDS=1000000 HELD_RECORDS=205000; fi
hostile invalid bomb0 invalid_file
echo "(targets: peak RSS <= 150 MB, ledger growth <= 64 KiB)"
hostile held bomb1 held_file
echo "(targets: peak RSS <= 150 MB; every record held, storage proportional to the records)"
fi

if want 6; then
echo "== 6. record_payment latency while a $total-record pass runs (the pass serve starts with)"
"$tool" register --data-dir "$work/d6" --users 1000 --prefix u- --width 4
head -c 32 /dev/urandom | base64 > "$work/secret6"
"$bin" serve --data-dir "$work/d6" --repo "$work/repo" --interval 0 --listen 127.0.0.1:0 \
  --admin-secret-file "$work/secret6" > "$work/serve6.out" 2>"$work/serve6.err" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve6.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve6.out" | head -1)
secret=$(cat "$work/secret6")
# Back-to-back payments within the first pass (PASS_SECONDS < its length): one payer shows the
# wait for the pass; 8 payers add the wait for each other's durable commits.
for conns in 1 8; do
  BENCH_SECRET="$secret" BENCH_METHOD=record_payment BENCH_PAYERS=1000 \
    wrk -t1 -c"$conns" -d"${PASS_SECONDS:-3}s" -s scripts/bench/rpc.lua "$url" | grep BENCH \
    | sed "s/^BENCH/FIGURE record_payment_during_pass connections=$conns/"
done
for _ in $(seq 600); do grep -q "pass finished run_id=1" "$work/serve6.err" && break; sleep 0.1; done
echo "the pass: $(grep -o 'run_id=1 applied=[0-9]*.*elapsed=[0-9.a-z]*' "$work/serve6.err") (target: record_payment p99 <= 50 ms while it runs)"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
fi

if want 9; then
echo "== 9. reconcile and back up the $total-record ledger of section 1 (redb)"
/usr/bin/time -f "TIME elapsed_s=%e max_rss_kb=%M" -o "$work/time9" \
  "$bin" reconcile --json --data-dir "$work/d1" --repo "$work/repo" > "$work/reconcile9.json" 2>/dev/null
consistent=$(grep -o '"consistent": [a-z]*' "$work/reconcile9.json" | head -1 | grep -o '[a-z]*$')
records=$(grep -A3 '"repo"' "$work/reconcile9.json" | grep -o '"records": [0-9]*' | grep -o '[0-9]*$')
elapsed=$(grep -o 'elapsed_s=[0-9.]*' "$work/time9" | cut -d= -f2)
rss_kb=$(grep -o 'max_rss_kb=[0-9]*' "$work/time9" | cut -d= -f2)
echo "FIGURE reconcile_records=$records consistent=$consistent elapsed_s=$elapsed records_per_s=$(echo "$records / $elapsed" | bc) peak_rss_mb=$((rss_kb / 1024)) (targets: 1000000 records <= 10 s, <= 200 MB)"
/usr/bin/time -f "TIME elapsed_s=%e max_rss_kb=%M" -o "$work/time9b" \
  "$bin" backup --data-dir "$work/d1" --to "$work/d1.backup" >/dev/null 2>&1
elapsed=$(grep -o 'elapsed_s=[0-9.]*' "$work/time9b" | cut -d= -f2)
rss_kb=$(grep -o 'max_rss_kb=[0-9]*' "$work/time9b" | cut -d= -f2)
echo "FIGURE backup_bytes=$(stat -c %s "$work/d1.backup") elapsed_s=$elapsed peak_rss_mb=$((rss_kb / 1024)) (snapshot, full verify of the copy, checksum)"
fi

if want 10; then
echo "== 10. list_users sorted and filtered over HTTP on loopback, $BIG_USERS users, every 10th with a balance (redb)"
"$tool" register --data-dir "$work/d10" --users "$BIG_USERS" --prefix b- --width 7
# One durable payment each: every user would take a quarter of an hour here.
"$tool" spread --data-dir "$work/d10" --users "$BIG_USERS" --prefix b- --width 7 --every 10 --threads 256
[ -d "$work/repo2" ] || "$bin" simulate --repo "$work/repo2" --nodes 2 --hours 2 --records 2 --users 10 --seed 2 >/dev/null
head -c 32 /dev/urandom | base64 > "$work/secret10"
"$bin" serve --data-dir "$work/d10" --repo "$work/repo2" --interval 0 --listen 127.0.0.1:0 \
  --admin-secret-file "$work/secret10" > "$work/serve10.out" 2>"$work/serve10.err" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve10.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve10.out" | head -1)
secret=$(cat "$work/secret10")
# First pages: the 100 lowest and highest balances, the biggest consumers, the lowest under a
# bound, and a sid search. 4 connections, so the latency is the query's rather than a queue's.
for query in \
  'balance_asc {"sort":"balance_asc","limit":100}' \
  'balance_desc {"sort":"balance_desc","limit":100}' \
  'consumed_desc {"sort":"consumed_desc","limit":100}' \
  'below_5000 {"sort":"balance_asc","filter":{"below_cents":5000},"limit":100}' \
  'text_search {"filter":{"text":"USER 99"},"limit":100}'; do
  name=${query%% *}
  BENCH_SECRET="$secret" BENCH_METHOD=list_users BENCH_PARAMS="${query#* }" \
    wrk -t2 -c4 -d"$DURATION" -s scripts/bench/rpc.lua "$url" | grep BENCH \
    | sed "s/^BENCH/FIGURE list_users_sorted query=$name/"
done
echo "(target: the 100 lowest balances of 1,000,000 users in p99 <= 10 ms)"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
fi

if want 11; then
echo "== 11. webhook latency: a pass's balance events to their arrival at a receiver on loopback (redb)"
ROUNDS=5 USERS=100 "$root/target/release/examples/bench_webhook"
fi

if want 8; then
echo "== 8. the PostgreSQL ledger (PostgreSQL 15 on this machine, fsync on)"
[ -d "$work/repo" ] || "$bin" simulate --repo "$work/repo" --nodes "$NODES" --hours "$HOURS" --records "$RECORDS" --users 1000 --seed 1 >/dev/null
[ -d "$work/repo2" ] || "$bin" simulate --repo "$work/repo2" --nodes 2 --hours 2 --records 2 --users 10 --seed 2 >/dev/null
BENCH_BIN="$bin" BENCH_TOOL="$tool" BENCH_WORK="$work" BENCH_REPO="$work/repo" BENCH_TOTAL="$total" \
  BIG_USERS="$BIG_USERS" DURATION="$DURATION" BILLING_PG_FSYNC=on scripts/with-postgres.sh scripts/bench/postgres.sh
fi

if want 7; then
for extra in scripts/bench_forge.sh; do
  [ -x "$extra" ] || { echo "bench: $extra is missing or not executable" >&2; exit 1; }
  echo "== $extra"; "$extra"
done
echo "== dashboard redraw"
"$root/target/release/examples/redraw_bench"
fi
