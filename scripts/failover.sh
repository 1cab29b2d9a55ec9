#!/usr/bin/env bash
# Failover of the aggregation pass between two replicas on one PostgreSQL ledger, end to end:
#   1. simulate a billing repo of 200,000 records (20 nodes × 100 hours × 100 records, 500 users);
#   2. register its 500 users and some payments, before any pass can see a record (below);
#   3. start replica A; once it holds the pass lock, start replica B, whose first pass queues
#      on that lock; `kill -9` A in the middle of its pass (some records applied, not all);
#   4. measure the failover: from the kill to the end of B's pass that applied the rest;
#   5. check against a single clean `aggregate --once` on redb over the same repo and the same
#      registrations and payments: every user's figures (list_users), the overview; and that
#      `rpc-server verify --ledger-url` finds the ledger consistent, the consumed index holds
#      every record of the repo exactly once and the balances add up to payments − usage.
# Prints `failover: N.NN s (scheduler interval 10 s)`; exits non-zero with a message saying
# what differs on any mismatch. Everything it starts (servers, the database it creates, the
# temp dir) is stopped and removed on exit, also on failure.
#   scripts/with-postgres.sh scripts/failover.sh  # or without: it re-runs itself through it
#   FAILOVER_KEEP=1 scripts/failover.sh           # keep the temp dir (logs) for a look afterwards
#   FAILOVER_KILL_AT=50 scripts/failover.sh       # kill A once this % of records applied (30)
#
# Registering before the first pass. `serve` runs a pass as soon as it starts, and a record
# of a user not yet registered is held (records_pending) and applied by `register_user`
# itself, not by a pass. So that every record is applied by a pass (A's or B's), users and
# payments are registered through a setup server whose repo is an empty repo (`simulate
# --hours 0`: no commit, so its first pass reads nothing), which is then stopped; A and B
# start on the real repo only after that. The redb reference gets the same registrations
# the same way (a second setup server on its own data dir) before its `aggregate --once`.
#
# What the failover time covers. B's first pass is queued on the pass lock, as any replica's
# scheduled pass is while another replica's pass runs longer than the interval (this pass
# takes ~30 s in a debug build, the interval is 10 s). So the time is PostgreSQL noticing the
# dead session and dropping its lock (and rolling back A's open transaction), B taking the
# lock, and B's pass over what A had not committed (nodes A finished are skipped). A replica
# idle at the kill would start at its next scheduler tick: add up to one interval.
#
# Finding the replica in a pass. The pass lock is a session advisory lock (key
# 0x62696c6c70617373, pg_locks classid 1651076204, objid 1885434739) held on a connection
# of its own: pg_locks names the backend holding it, pg_stat_activity that backend's client
# port, and /proc/net/tcp plus /proc/PID/fd the process that owns that port.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ -z "${BILLING_TEST_PG_URL:-}" ]; then
    exec "$root/scripts/with-postgres.sh" "$root/scripts/failover.sh" "$@"
fi
pg_url=$BILLING_TEST_PG_URL
# The scenario sets what it needs: settings exported in the caller's shell must not leak in.
for v in $(compgen -e | grep '^BILLING_' || true); do unset "$v"; done

need=()
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v psql >/dev/null || need+=(postgresql-client)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

started=$(date +%s.%N)
step() { printf '== [%6.1f s] %s\n' "$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$*"; }

step "build"
# The same build in every end-to-end script (one feature set: no rebuild between them).
cargo build -q --workspace --bins
bin="${CARGO_TARGET_DIR:-$root/target}/debug/rpc-server"

interval=10
kill_at=${FAILOVER_KILL_AT:-30}
work=$(mktemp -d -t billing-failover.XXXXXX)
db="failover_$$"
db_url="${pg_url%/*}/$db"
db_created=""
pids=()
cleanup() {
    local rc=$?
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        for log in "$work"/*.err; do
            [ -f "$log" ] || continue
            echo "--- $(basename "$log") (last 15 lines)" >&2
            tail -n 15 "$log" >&2 || true
        done
    fi
    if [ -n "$db_created" ]; then
        psql "$pg_url" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [ "${FAILOVER_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "FAIL [failover]: $*" >&2
    exit 1
}

now() { date +%s.%N; }
# Seconds from $1 to $2 (epoch seconds, fractional), two decimals.
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# An RFC 3339 timestamp as epoch seconds, fractional.
epoch() { date -d "$1" +%s.%N; }
# awk's exit status as a boolean: later A B (A > B, fractional).
later() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

# start_listening and rpc_at.
source scripts/lib/serve.sh

# Drops $1 from the processes stopped at exit.
forget() {
    local p kept=()
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    pids=("${kept[@]}")
}

# Stops the server $1 (SIGTERM) and waits for it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

# The same users and payments on the server at $1, as one JSON-RPC batch: every simulated
# user (u-0000 …), a payment for every 7th user, a second one for u-0000.
register_all() {
    local reply
    reply=$(jq -nc --argjson n "$users" '
        def sid: "u-" + ("000" + tostring)[-4:];
        [range($n) | {jsonrpc: "2.0", id: "reg-\(.)", method: "register_user",
                      params: {user_sid: sid}}]
        + [range(0; $n; 7) | {jsonrpc: "2.0", id: "pay-\(.)", method: "record_payment",
                      params: {payment_id: "pay-\(sid)-1", user_sid: sid,
                               amount_cents: (10000 + (. * 131) % 30000)}}]
        + [{jsonrpc: "2.0", id: "pay-extra", method: "record_payment",
            params: {payment_id: "pay-u-0000-2", user_sid: "u-0000", amount_cents: 250000,
                     kind: "top_up", reference: "failover"}}]' |
        curl -sS --max-time 120 -H "Authorization: Bearer $secret" \
            -H 'Content-Type: application/json' --data-binary @- "$1") ||
        fail "registering on $1: the server did not answer"
    jq -e 'type == "array" and all(.[]; has("result"))' <<<"$reply" >/dev/null ||
        fail "registering on $1 failed: $(jq -c '[.[]? | select(has("error"))][:3]' <<<"$reply" 2>/dev/null || head -c 500 <<<"$reply")"
    jq -r '[.[] | select(.id | startswith("pay-")) | .result.amount_cents] | add' <<<"$reply"
}

# Every user of the server at $1 (list_users pages), one JSON object a line, without the
# creation time (which differs between the two ledgers).
all_users() {
    local cursor=null page
    while :; do
        page=$(rpc_at "$1" list_users "{\"limit\":1000,\"cursor\":$cursor}")
        jq -c '.items[] | del(.created_at)' <<<"$page"
        cursor=$(jq -c .next_cursor <<<"$page")
        [ "$cursor" != null ] || break
    done
}

# One SQL value from the failover database.
sql() { psql "$db_url" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }

# The backend holding (granted = true) or waiting for (false) the pass lock: its client port.
pass_lock_port() {
    sql "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.classid = 1651076204 AND l.objid = 1885434739
           AND l.objsubid = 1 AND l.granted = $1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         LIMIT 1"
}

# The process, among those started here, owning the local TCP port $1 (a connection to
# PostgreSQL): the socket's inode from /proc/net/tcp{,6}, then the process with that fd.
port_owner() {
    local inode pid
    inode=$(awk -v p="$(printf ':%04X' "$1")" 'substr($2, length($2) - 4) == p { print $10; exit }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null)
    [ -n "$inode" ] || return 0
    for pid in "${pids[@]}"; do
        if find "/proc/$pid/fd" -lname "socket:\[$inode\]" 2>/dev/null | grep -q .; then
            echo "$pid"
            return 0
        fi
    done
}

# Who holds (true) or waits for (false) the pass lock: A, B or "" (nobody / someone else).
pass_lock_replica() {
    local port owner
    port=$(pass_lock_port "$1")
    [ -n "$port" ] || return 0
    owner=$(port_owner "$port")
    [ -n "$owner" ] || return 0
    if [ "$owner" = "$pid_a" ]; then echo A; elif [ "$owner" = "$pid_b" ]; then echo B; fi
}

consumed() { sql "SELECT consumed_records FROM ledger_meta"; }

head -c 32 /dev/urandom | base64 >"$work/admin.secret"
chmod 600 "$work/admin.secret"
secret=$(cat "$work/admin.secret")
users=500

step "simulate the billing repo"
"$bin" simulate --repo "$work/billing.git" --nodes 20 --hours 100 --records 100 --users "$users" \
    >"$work/simulate.out" 2>"$work/simulate.err" || fail "simulate failed"
"$bin" simulate --repo "$work/empty.git" --hours 0 >/dev/null 2>>"$work/simulate.err" ||
    fail "simulate of the empty repo failed"
read -r total total_cost < <(sed -n 's/.* \([0-9]*\) records, \([0-9]*\) cents.*/\1 \2/p' "$work/simulate.out")
[ -n "${total:-}" ] || fail "simulate printed no record count: $(cat "$work/simulate.out")"
[ "$total" -ge 200000 ] || fail "the repo holds $total records, expected at least 200,000"
echo "repo: $total records, $total_cost cents, $users users"

step "register users and payments on PostgreSQL and on redb (setup servers on an empty repo)"
psql "$pg_url" -qAtc "CREATE DATABASE $db" >/dev/null || fail "cannot create the database $db"
db_created=yes
start_listening setup-pg "$bin" serve --ledger-url "$db_url" --data-dir "$work/setup-pg" \
    --repo "$work/empty.git" --interval 0 --listen 127.0.0.1:0 \
    --admin-secret-file "$work/admin.secret" --replica-name setup
setup_pg_pid=$last_pid setup_pg_url=$listen_url
start_listening setup-redb "$bin" serve --data-dir "$work/ref" \
    --repo "$work/empty.git" --interval 0 --listen 127.0.0.1:0 \
    --admin-secret-file "$work/admin.secret" --replica-name setup
setup_redb_pid=$last_pid setup_redb_url=$listen_url
# Both ledgers at once; the redb one in the background.
register_all "$setup_redb_url" >"$work/paid-ref" &
register_pid=$!
pids+=("$register_pid")
paid=$(register_all "$setup_pg_url")
wait "$register_pid" || fail "registering on redb failed"
forget "$register_pid"
paid_ref=$(cat "$work/paid-ref")
[ "$paid" = "$paid_ref" ] || fail "payments differ between the ledgers: $paid vs $paid_ref"
for url in "$setup_pg_url" "$setup_redb_url"; do
    [ "$(rpc_at "$url" overview '{}' | jq '[.total_users, .consumed_records, .pending_records]')" = \
        "$(jq -n --argjson u "$users" '[$u, 0, 0]')" ] ||
        fail "after registering, $url has: $(rpc_at "$url" overview '{}')"
done
stop "$setup_pg_pid"
stop "$setup_redb_pid"
echo "$users users, $paid cents paid, on both ledgers; no record seen yet"

step "start replica A; wait until it holds the pass lock"
replica() {
    start_listening "replica-$1" "$bin" serve --ledger-url "$db_url" --data-dir "$work/replica-$1" \
        --repo "$work/billing.git" --interval "$interval" --listen 127.0.0.1:0 \
        --admin-secret-file "$work/admin.secret" --replica-name "$1"
}
pid_b=""
replica A
pid_a=$last_pid url_a=$listen_url
deadline=$(($(date +%s) + 60))
until [ "$(pass_lock_replica true)" = A ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "replica A did not take the pass lock within 60 s"
    kill -0 "$pid_a" 2>/dev/null || fail "replica A exited"
    sleep 0.1
done

step "start replica B; its first pass waits for the lock"
replica B
pid_b=$last_pid url_b=$listen_url
deadline=$(($(date +%s) + 60))
until [ "$(pass_lock_replica false)" = B ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "replica B did not wait for the pass lock within 60 s"
    [ "$(pass_lock_replica true)" = A ] || fail "replica A no longer holds the pass lock (pass over too soon?)"
    sleep 0.1
done

step "wait until A applied $kill_at% of the records, then kill -9 A"
threshold=$((total * kill_at / 100))
[ "$threshold" -gt 0 ] || threshold=1
deadline=$(($(date +%s) + 120))
while :; do
    applied=$(consumed)
    [ "$applied" -ge "$threshold" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "A applied only $applied records within 120 s"
    sleep 0.1
done
[ "$(pass_lock_replica true)" = A ] || fail "A no longer holds the pass lock before the kill"
[ "$applied" -lt "$total" ] || fail "A's pass applied every record before it could be killed"
kill -9 "$pid_a"
t_kill=$(now)
stop "$pid_a"
echo "A killed in its pass, with $applied of $total records committed (or a few more since)"

step "measure the failover: until B's pass applied every record"
takeover=""
deadline=$(($(date +%s) + 150))
while :; do
    if [ -z "$takeover" ] && [ "$(pass_lock_replica true)" = B ]; then
        takeover=$(seconds "$t_kill" "$(now)")
    fi
    state=$(rpc_at "$url_b" aggregator_state '{}')
    if [ "$(jq -r '.last_run_replica // ""' <<<"$state")" = B ] &&
        run_started=$(jq -r '.last_run.started_at // ""' <<<"$state") && [ -n "$run_started" ] &&
        later "$(epoch "$run_started")" "$t_kill" &&
        [ "$(rpc_at "$url_b" overview '{}' | jq .consumed_records)" = "$total" ]; then
        break
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "no pass of B applied every record within 150 s of the kill: $state"
    kill -0 "$pid_b" 2>/dev/null || fail "replica B exited"
    sleep 0.2
done
# B's failover pass is the first run started after the kill (B's scheduler may have run a
# no-op pass since): it alone applied what A left, so later runs applied nothing.
after_kill=$(rpc_at "$url_b" list_runs '{"limit":100}' |
    jq -c --arg t "$(date -u -d "@$t_kill" +%Y-%m-%dT%H:%M:%S.%3NZ)" \
        '[.items[] | select(.started_at > $t)] | sort_by(.started_at)')
run=$(jq -c '.[0]' <<<"$after_kill")
[ "$(jq '.errors | length' <<<"$run")" = 0 ] || fail "B's pass had errors: $(jq -c .errors <<<"$run")"
[ "$(jq '[.[1:][].records_applied] | add // 0' <<<"$after_kill")" = 0 ] ||
    fail "B's first pass after the kill did not apply all the rest: $(jq -c 'map({run_id, records_applied})' <<<"$after_kill")"
# Every record A committed stays applied (B skips them); B applies exactly the rest.
applied_by_b=$(jq .records_applied <<<"$run")
applied_by_a=$((total - applied_by_b))
[ "$applied_by_b" -gt 0 ] && [ "$applied_by_a" -ge "$applied" ] ||
    fail "B's pass applied $applied_by_b records, but A had committed $applied of $total before the kill"
# (Duplicates would be fine: records of a node A committed in part, found again.)
[ "$(jq '.records_conflict + .records_pending + .records_invalid' <<<"$run")" = 0 ] ||
    fail "B's pass found records it could not apply: $(jq -c 'del(.errors)' <<<"$run")"
failover=$(seconds "$t_kill" "$(epoch "$(jq -r .finished_at <<<"$run")")")
echo "B took the pass lock ${takeover:-?} s after the kill (polled every ~0.2 s); its pass #$(jq .run_id <<<"$run") applied the other $applied_by_b records (A's committed: $applied_by_a)"
echo "failover: $failover s (scheduler interval $interval s)"

step "reference: one clean aggregate --once on redb over the same repo"
"$bin" aggregate --once --json --repo "$work/billing.git" --data-dir "$work/ref" \
    >"$work/ref-once.json" 2>"$work/ref-once.err" || fail "aggregate --once on redb failed"
[ "$(jq '[.records_applied, (.errors | length), .records_pending]' -c "$work/ref-once.json")" = "[$total,0,0]" ] ||
    fail "the redb reference pass did not apply every record: $(jq -c 'del(.errors)' "$work/ref-once.json")"
start_listening ref "$bin" serve --data-dir "$work/ref" --repo "$work/billing.git" --interval 0 \
    --listen 127.0.0.1:0 --admin-secret-file "$work/admin.secret" --replica-name ref
url_ref=$listen_url

step "compare"
all_users "$url_b" >"$work/users-pg.jsonl"
all_users "$url_ref" >"$work/users-redb.jsonl"
[ "$(wc -l <"$work/users-pg.jsonl")" = "$users" ] ||
    fail "PostgreSQL lists $(wc -l <"$work/users-pg.jsonl") users, expected $users"
diff "$work/users-redb.jsonl" "$work/users-pg.jsonl" >"$work/users.diff" ||
    fail "users differ between redb (<) and PostgreSQL (>) in $(grep -c '^<' "$work/users.diff") row(s): $(head -n 6 "$work/users.diff")"
figures='{total_users, total_balance_cents, overdrawn_users, consumed_records, pending_records, rejected_items}'
overview_pg=$(rpc_at "$url_b" overview '{}' | jq -c "$figures")
overview_ref=$(rpc_at "$url_ref" overview '{}' | jq -c "$figures")
[ "$overview_pg" = "$overview_ref" ] ||
    fail "overview differs: redb $overview_ref, PostgreSQL $overview_pg"
[ "$(jq .consumed_records <<<"$overview_pg")" = "$total" ] ||
    fail "consumed_records is $(jq .consumed_records <<<"$overview_pg"), the repo holds $total records"
[ "$(sql 'SELECT count(*) FROM consumed')" = "$total" ] ||
    fail "the consumed index holds $(sql 'SELECT count(*) FROM consumed') keys, the repo $total records"
[ "$(jq .total_balance_cents <<<"$overview_pg")" = $((paid - total_cost)) ] ||
    fail "the balances add up to $(jq .total_balance_cents <<<"$overview_pg"), expected $paid paid − $total_cost used"
"$bin" verify --ledger-url "$db_url" >"$work/verify.out" 2>"$work/verify.err" ||
    fail "verify --ledger-url exited $?: $(cat "$work/verify.out" "$work/verify.err")"
grep -q ': consistent' "$work/verify.out" || fail "verify did not say consistent: $(cat "$work/verify.out")"
echo "$users users equal to the redb run; overview $overview_pg; $(head -n1 "$work/verify.out")"

step "done"
echo "failover: ok, $total records applied exactly once across the kill; failover $failover s"
