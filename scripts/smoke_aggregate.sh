#!/usr/bin/env bash
# Acceptance scenario of the aggregator, end to end on loopback:
#   seed nodes/A/usage_*.otoml; register users and payments; aggregate; every
#   balance went down by exactly the sum of cost_cents; the consumed index holds
#   every key; a second pass is a no-op; one new record committed through the
#   forge's contents API is the only thing the next pass applies; a file over
#   10 MiB (which a Forgejo sends without content as a blob) applies whole; a
#   final `aggregate --once --json` (no server) is a no-op too.
# Runs against the forge emulator (the Forgejo source) and against a plain git
# repo (the git source), each with the ledger in redb and then in PostgreSQL
# (`--ledger-url`, a fresh database per run): four runs. With FORGE_URL,
# FORGE_REPO and FORGE_TOKEN set, the forge runs target that real forge instead
# of the emulator. The PostgreSQL runs use the server in BILLING_TEST_PG_URL;
# without it the script runs itself through scripts/with-postgres.sh (a
# throwaway PostgreSQL).
# Everything it starts is stopped, the databases it created dropped and its temp
# dir removed on exit, also on failure.
#   scripts/smoke_aggregate.sh              # both sources, both ledgers
#   SMOKE_SOURCES=forge scripts/smoke_aggregate.sh
#   SMOKE_LEDGERS=redb scripts/smoke_aggregate.sh   # no PostgreSQL needed
#   SMOKE_KEEP=1 scripts/smoke_aggregate.sh # keep the temp dir for a look afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

ledgers=${SMOKE_LEDGERS:-redb postgres}
if [[ " $ledgers " == *" postgres "* ]] && [ -z "${BILLING_TEST_PG_URL:-}" ]; then
    exec "$root/scripts/with-postgres.sh" "$root/scripts/smoke_aggregate.sh" "$@"
fi

need=()
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v git >/dev/null || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Settings of the calling shell must not leak into the servers started here.
unset BILLING_LISTEN BILLING_DATA_DIR BILLING_REPO BILLING_FORGE_URL BILLING_FORGE_REPO \
    BILLING_FORGE_TOKEN BILLING_BRANCH BILLING_INTERVAL BILLING_ADMIN_SECRET \
    BILLING_LEDGER_URL BILLING_LEDGER_PASSWORD_FILE BILLING_REPLICA_NAME BILLING_CONFIG

# The same build in every end-to-end script (one feature set: no rebuild between them).
cargo build -q --workspace --bins
target="${CARGO_TARGET_DIR:-$root/target}/debug"
server_bin="$target/rpc-server"
emulator_bin="$target/forge-emulator"

work=$(mktemp -d)
pids=()
databases=()
cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for db in "${databases[@]}"; do
        dropdb_cmd --force "$db" >/dev/null 2>&1 || true
    done
    if [ "$rc" -ne 0 ]; then
        for log in "$work"/*.err; do
            [ -f "$log" ] || continue
            echo "--- $(basename "$log") (last 20 lines)" >&2
            tail -n 20 "$log" >&2 || true
        done
    fi
    if [ "${SMOKE_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# What runs (the source, and ", postgres" on PostgreSQL), for messages.
mode=setup
label=""
fail() {
    echo "FAIL [$mode$label]: $*" >&2
    exit 1
}

# createdb/dropdb of the PostgreSQL server in BILLING_TEST_PG_URL (its
# connection string names the host, port and user), from PATH or the server's
# bin dir (as scripts/with-postgres.sh finds it).
pg_tool() {
    local tool=$1 d
    shift
    if ! command -v "$tool" >/dev/null; then
        for d in /usr/lib/postgresql/*/bin; do
            [ -x "$d/$tool" ] && { tool="$d/$tool"; break; }
        done
    fi
    "$tool" --maintenance-db="$BILLING_TEST_PG_URL" "$@"
}
createdb_cmd() { pg_tool createdb "$@"; }
dropdb_cmd() { pg_tool dropdb "$@"; }

# start_listening and rpc_at.
source scripts/lib/serve.sh

stop_last() {
    local pid=${pids[-1]}
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset 'pids[-1]'
}

# JSON-RPC call to the server under test: rpc METHOD PARAMS_JSON -> prints the result.
rpc() { rpc_at "$server_url" "$@"; }

# OTOML file of node A: records "key user cost" given one per argument.
otoml() {
    printf 'version = 1\n'
    local rec key user cost
    for rec in "$@"; do
        read -r key user cost <<<"$rec"
        printf '\n[[records]]\nidempotency_key = "%s"\nuser_sid = "%s"\nnode_name = "A"\ncost_cents = %s\nresource = "vm.cpu"\n' \
            "$key" "$user" "$cost"
    done
}

# `count` records of one user, 1 cent each, each padded to about 1 KiB (a file over 10 MiB
# for 11,000 records: over Forgejo's default blob cap).
big_otoml() {
    local user=$1 count=$2 pad
    pad=$(printf 'x%.0s' $(seq 1000))
    printf 'version = 1\n'
    awk -v user="$user" -v run="$run_id" -v pad="$pad" -v n="$count" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "\n[[records]]\nidempotency_key = \"big-%s-%d\"\nuser_sid = \"%s\"\nnode_name = \"A\"\ncost_cents = 1\nunit = \"%s\"\n", run, i, user, pad
    }'
}

# Commits one new file (path, content on stdin) the way this mode's nodes do.
commit_file() {
    local path=$1
    cat >"$work/commit.body"
    case "$mode" in
    forge)
        local status
        base64 -w0 "$work/commit.body" >"$work/commit.b64"
        status=$(jq -n --rawfile c "$work/commit.b64" --arg m "smoke: $path" \
            --arg b "$branch" '{content: $c, message: $m, branch: $b}' |
            curl -sS --max-time 60 -o "$work/contents.json" -w '%{http_code}' -X POST \
                -H "Authorization: token $forge_token" -H 'Content-Type: application/json' \
                --data-binary @- "$forge_url/api/v1/repos/$forge_repo/contents/$path") ||
            fail "contents API: no answer"
        [ "$status" = 201 ] || fail "contents API answered $status: $(cat "$work/contents.json")"
        ;;
    git)
        mkdir -p "$node_repo/$(dirname "$path")"
        cp "$work/commit.body" "$node_repo/$path"
        git -C "$node_repo" add "$path"
        git -C "$node_repo" commit -q -m "smoke: $path"
        ;;
    esac
}

emulator_requests() {
    curl -sS --max-time 10 "$forge_url/_emulator/stats" | jq .total
}

balance() {
    rpc get_balance "{\"user_sid\":\"$1\"}" | jq .credit_balance_cents
}

# run_scenario SOURCE LEDGER: SOURCE is forge or git, LEDGER redb or postgres.
run_scenario() {
    mode=$1
    local ledger=$2
    local dir="$work/$mode-$ledger" run_id
    mkdir -p "$dir"
    run_id="$(date +%s)-$$"
    # The ledger: redb in the data dir, or a fresh PostgreSQL database (its name
    # is unique, so earlier runs on a shared server do not interfere).
    local ledger_args=()
    label=""
    if [ "$ledger" = postgres ]; then
        label=", postgres"
        local db="smoke_${mode}_$$_${RANDOM}"
        createdb_cmd "$db" || fail "createdb $db failed"
        databases+=("$db")
        ledger_args=(--ledger-url "${BILLING_TEST_PG_URL%/*}/$db")
    fi
    local u1="u-smoke-1-$run_id" u2="u-smoke-2-$run_id"
    local source_args=()
    local hour_a hour_b hour_c
    # On a real forge earlier runs left files behind: use hours no run used yet.
    hour_a=$(date -u +%Y-%m-%d-%H)
    hour_b=$(date -u -d '+1 hour' +%Y-%m-%d-%H)
    hour_c=$(date -u -d '+2 hour' +%Y-%m-%d-%H)
    case "$mode" in
    forge)
        if [ -n "${FORGE_URL:-}" ] && [ -n "${FORGE_REPO:-}" ] && [ -n "${FORGE_TOKEN:-}" ]; then
            forge_url=${FORGE_URL%/}
            forge_repo=$FORGE_REPO
            forge_token=$FORGE_TOKEN
            emulated=0
            # Distinct stamps so a rerun within the hour does not collide.
            hour_a="2000-01-$(printf '%02d' $((RANDOM % 28 + 1)))-$(printf '%02d' $((RANDOM % 24)))"
            hour_b="2001-01-$(printf '%02d' $((RANDOM % 28 + 1)))-$(printf '%02d' $((RANDOM % 24)))"
            hour_c="2002-01-$(printf '%02d' $((RANDOM % 28 + 1)))-$(printf '%02d' $((RANDOM % 24)))"
        else
            forge_repo="lhumina_code/hero_onboarding_billing"
            forge_token="smoke-forge-token-$run_id"
            start_listening emulator "$emulator_bin" --repo "$dir/billing.git" \
                --forge-repo "$forge_repo" --token "$forge_token" --listen 127.0.0.1:0
            forge_url=$listen_url
            emulated=1
        fi
        printf '%s\n' "$forge_token" >"$dir/forge.token"
        chmod 600 "$dir/forge.token"
        source_args=(--forge-url "$forge_url" --forge-repo "$forge_repo"
            --forge-token-file "$dir/forge.token")
        ;;
    git)
        node_repo="$dir/node-repo"
        git init -q -b "$branch" "$node_repo"
        git -C "$node_repo" config user.email smoke@localhost
        git -C "$node_repo" config user.name smoke
        source_args=(--repo "$node_repo")
        ;;
    esac
    head -c 32 /dev/urandom | base64 >"$dir/admin.secret"
    chmod 600 "$dir/admin.secret"
    secret=$(cat "$dir/admin.secret")

    start_listening "server-$mode-$ledger" "$server_bin" serve --listen 127.0.0.1:0 \
        --metrics-listen 127.0.0.1:0 \
        --data-dir "$dir/data" --interval 0 --admin-secret-file "$dir/admin.secret" \
        --branch "$branch" "${source_args[@]}" "${ledger_args[@]}"
    server_url=$listen_url
    curl -sSf --max-time 10 "$server_url/health" >/dev/null || fail "GET /health failed"

    # Users and their prepaid credit.
    local user
    for user in "$u1" "$u2"; do
        rpc register_user "{\"user_sid\":\"$user\"}" >/dev/null
        rpc record_payment "{\"payment_id\":\"pay-$user\",\"user_sid\":\"$user\",\"amount_cents\":10000}" >/dev/null
    done

    # Hour A: three records.
    otoml "k1-$run_id $u1 125" "k2-$run_id $u2 40" "k3-$run_id $u1 10" |
        commit_file "nodes/A/usage_$hour_a.otoml"
    local first
    first=$(rpc aggregate_now '{}')
    [ "$(jq '.errors | length' <<<"$first")" = 0 ] || fail "first pass errors: $(jq -c .errors <<<"$first")"
    [ "$(jq .records_applied <<<"$first")" = 3 ] || fail "first pass applied $(jq .records_applied <<<"$first") records, expected 3"
    [ "$(balance "$u1")" = $((10000 - 125 - 10)) ] || fail "balance of $u1 is $(balance "$u1"), expected 9865"
    [ "$(balance "$u2")" = $((10000 - 40)) ] || fail "balance of $u2 is $(balance "$u2"), expected 9960"

    local consumed key
    consumed=$(rpc list_consumed '{"limit":1000}')
    for key in "k1-$run_id" "k2-$run_id" "k3-$run_id"; do
        [ "$(jq --arg k "$key" '[.items[] | select(.idempotency_key == $k)] | length' <<<"$consumed")" = 1 ] ||
            fail "consumed index does not hold $key exactly once"
    done

    # Nothing new: a no-op (and one request to the emulated forge).
    local before second
    [ "$mode" = forge ] && [ "$emulated" = 1 ] && before=$(emulator_requests)
    second=$(rpc aggregate_now '{}')
    [ "$(jq '[.records_applied, .files_read] | add' <<<"$second")" = 0 ] ||
        fail "second pass was not a no-op: $second"
    if [ "$mode" = forge ] && [ "$emulated" = 1 ]; then
        [ $(($(emulator_requests) - before)) = 1 ] ||
            fail "a no-op pass cost $(($(emulator_requests) - before)) forge requests, expected 1"
    fi

    # Hour B: one new record through the forge (or a git commit).
    otoml "k4-$run_id $u2 7" | commit_file "nodes/A/usage_$hour_b.otoml"
    local third
    third=$(rpc aggregate_now '{}')
    [ "$(jq .records_applied <<<"$third")" = 1 ] || fail "third pass applied $(jq .records_applied <<<"$third") records, expected 1"
    [ "$(jq .files_read <<<"$third")" = 1 ] || fail "third pass read $(jq .files_read <<<"$third") files, expected 1"
    [ "$(balance "$u1")" = 9865 ] || fail "balance of $u1 changed to $(balance "$u1")"
    [ "$(balance "$u2")" = $((9960 - 7)) ] || fail "balance of $u2 is $(balance "$u2"), expected 9953"

    # The metrics endpoint counted the four records and passes valid text.
    local metrics_url scrape
    metrics_url=$(sed -n 's/^metrics on \(http:\/\/[^ ]*\).*/\1/p' "$work/server-$mode-$ledger.out" | head -n1)
    [ -n "$metrics_url" ] || fail "serve --metrics-listen did not print 'metrics on'"
    scrape=$(curl -sSf --max-time 10 "$metrics_url") || fail "GET $metrics_url failed"
    grep -qx 'billing_records_total{outcome="applied"} 4' <<<"$scrape" ||
        fail "metrics: expected 4 applied records, got: $(grep '^billing_records_total' <<<"$scrape")"
    # Three passes asked for, and the one at start.
    awk '$1 == "billing_passes_total{result=\"ok\"}" && $2 >= 3 { found = 1 } END { exit !found }' \
        <<<"$scrape" || fail "metrics: expected at least 3 ok passes, got: $(grep '^billing_passes_total' <<<"$scrape")"
    if command -v promtool >/dev/null; then
        promtool check metrics <<<"$scrape" || fail "promtool check metrics refused the scrape"
    fi

    # Hour C: a file over 10 MiB, which a forge sends without content as a blob (Forgejo's
    # default DEFAULT_MAX_BLOB_SIZE): read whole all the same, every record applied once.
    local big=11000 fourth
    big_otoml "$u2" "$big" | commit_file "nodes/A/usage_$hour_c.otoml"
    [ "$(stat -c %s "$work/commit.body")" -gt $((10 * 1024 * 1024)) ] || fail "the big file is not over 10 MiB"
    fourth=$(rpc aggregate_now '{}')
    [ "$(jq '.errors | length' <<<"$fourth")" = 0 ] || fail "big-file pass errors: $(jq -c .errors <<<"$fourth")"
    [ "$(jq .records_applied <<<"$fourth")" = "$big" ] ||
        fail "big-file pass applied $(jq .records_applied <<<"$fourth") records, expected $big"
    [ "$(balance "$u2")" = $((9953 - big)) ] || fail "balance of $u2 is $(balance "$u2"), expected $((9953 - big))"

    # Without the server: `aggregate --once --json` is a no-op on the same data dir.
    stop_last
    local once
    once=$("$server_bin" aggregate --once --json --data-dir "$dir/data" --branch "$branch" \
        "${source_args[@]}" "${ledger_args[@]}" 2>"$work/aggregate-$mode-$ledger.err") ||
        fail "aggregate --once failed"
    [ "$(jq '[.records_applied, .files_read] | add' <<<"$once")" = 0 ] ||
        fail "aggregate --once was not a no-op: $once"
    [ "$(jq '.errors | length' <<<"$once")" = 0 ] || fail "aggregate --once errors: $(jq -c .errors <<<"$once")"

    if [ "$mode" = forge ] && [ "$emulated" = 1 ]; then
        stop_last
    fi
    echo "ok [$mode$label]: 4 records and a 12 MB file of $big applied exactly once, no-op passes verified"
}

branch=${SMOKE_BRANCH:-main}
for ledger in $ledgers; do
    case "$ledger" in
    redb | postgres) ;;
    *) fail "SMOKE_LEDGERS: unknown ledger '$ledger' (redb, postgres)" ;;
    esac
done
passed=0
for ledger in $ledgers; do
    for source in ${SMOKE_SOURCES:-forge git}; do
        run_scenario "$source" "$ledger"
        passed=$((passed + 1))
    done
done
echo "smoke_aggregate: $passed passed, 0 failed"
