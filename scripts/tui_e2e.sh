#!/usr/bin/env bash
# End-to-end test of the dashboard: starts `rpc-server demo` on a free
# loopback port, runs `tui-admin` in a detached tmux session, sends keys and
# asserts on `tmux capture-pane` output. Everything it starts is stopped on
# exit, also on failure.
#   scripts/tui_e2e.sh            # builds the debug binaries first
#   TUI_E2E_KEEP=1 scripts/tui_e2e.sh   # keep the temp dir for a look afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
# The scenario sets what it needs: settings exported in the caller's shell must not leak in.
for v in $(compgen -e | grep '^BILLING_' || true); do unset "$v"; done
root=$(pwd)
started=$(date +%s)

command -v tmux >/dev/null || (apt-get update && apt-get install -y tmux)
command -v curl >/dev/null || (apt-get update && apt-get install -y curl)
# tmux needs a terminal type even when this script runs without one (CI).
export TERM="${TERM:-xterm-256color}"
[ "$TERM" = dumb ] && export TERM=xterm-256color

# The same build in every end-to-end script (one feature set: no rebuild between them).
cargo build -q --workspace --bins
target="${CARGO_TARGET_DIR:-$root/target}/debug"
server_bin="$target/rpc-server"
tui_bin="$target/tui-admin"

work=$(mktemp -d)
session="tui-e2e-$$"
bad_session="tui-e2e-bad-$$"
server_pid=""
cleanup() {
    local rc=$?
    tmux kill-session -t "$session" 2>/dev/null || true
    tmux kill-session -t "$bad_session" 2>/dev/null || true
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ]; then
        echo "--- server stderr (last 20 lines)"
        tail -n 20 "$work/server.err" 2>/dev/null || true
        echo "--- dashboard stderr"
        cat "$work/tui.err" 2>/dev/null || true
    fi
    if [ "${TUI_E2E_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -n "${last_screen:-}" ]; then
        echo "--- last screen" >&2
        printf '%s\n' "$last_screen" >&2
    fi
    exit 1
}

# Waits until the pane of session $1 shows the fixed string $2 (timeout $3 s, default 15).
last_screen=""
wait_for() {
    local target=$1 text=$2 timeout=${3:-15}
    local deadline=$(($(date +%s) + timeout))
    while :; do
        last_screen=$(tmux capture-pane -p -t "$target" 2>/dev/null || true)
        if grep -qF -- "$text" <<<"$last_screen"; then return 0; fi
        [ "$(date +%s)" -ge "$deadline" ] && fail "screen of $target never showed: $text"
        sleep 0.2
    done
}

# Fails if the current screen of session $1 shows the fixed string $2.
assert_absent() {
    last_screen=$(tmux capture-pane -p -t "$1")
    if grep -qF -- "$2" <<<"$last_screen"; then fail "screen of $1 still shows: $2"; fi
}

echo "== start the demo server on a free port"
"$server_bin" demo --data-dir "$work/demo" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
url=""
for _ in $(seq 1 300); do
    url=$(sed -n 's/^listening on //p' "$work/server.out" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "rpc-server demo exited early"
    sleep 0.2
done
[ -n "$url" ] || fail "rpc-server demo printed no 'listening on' line within 60 s"
secret_file="$work/demo/admin.secret"
echo "server at $url"

rpc() {
    curl -sS --fail-with-body -H "Authorization: Bearer $(cat "$secret_file")" \
        -H 'Content-Type: application/json' \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$2}" "$url"
}

# The first pass runs beside the API; balances are final once it is recorded.
first_pass_done() { [[ $(rpc aggregator_state '{}') == *'"last_run":{'* ]]; }
for _ in $(seq 1 150); do
    first_pass_done && break
    sleep 0.2
done
first_pass_done || fail "the demo's first pass did not finish within 30 s"

# Integer cents as the dashboard prints them: -1,234.56
format_cents() {
    awk -v c="$1" 'BEGIN {
        sign = ""; if (c < 0) { sign = "-"; c = -c }
        units = int(c / 100); frac = c % 100
        s = sprintf("%d", units); out = ""
        while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
        printf "%s%s%s.%02d", sign, s, out, frac
    }'
}

user=u-0003
balance_json=$(rpc get_balance "{\"user_sid\":\"$user\"}")
cents=$(grep -o '"credit_balance_cents":-\{0,1\}[0-9]*' <<<"$balance_json" | cut -d: -f2)
[ -n "$cents" ] || fail "get_balance $user answered without a balance: $balance_json"
expected=$(format_cents "$cents")
last_run=$(rpc list_runs '{"limit":1}' | grep -o '"run_id":[0-9]*' | head -n 1 | cut -d: -f2)
echo "get_balance $user = $cents cents ($expected); last run #$last_run"

echo "== dashboard: overview"
tmux new-session -d -s "$session" -x 120 -y 40 \
    "'$tui_bin' --url '$url' --secret-file '$secret_file' --refresh 1s 2>'$work/tui.err'; echo TUI-EXIT-CODE=\$?; sleep 600"
wait_for "$session" "connected"
wait_for "$session" "Total balance"
wait_for "$session" "Records applied per pass"

echo "== users view lists $user with the balance get_balance reports"
tmux send-keys -t "$session" 2
wait_for "$session" "$user"
line=$(grep -F -- "$user" <<<"$last_screen" | head -n 1)
grep -qF -- " $expected " <<<"$line " || fail "the users row of $user does not show balance $expected: $line"

echo "== / filters, Enter opens the detail, Esc goes back"
tmux send-keys -t "$session" / Edsger Enter
wait_for "$session" 'filter "Edsger"'
assert_absent "$session" "u-0000"
tmux send-keys -t "$session" Enter
wait_for "$session" "User $user (Esc back)"
wait_for "$session" "Recent consumed records"
tmux send-keys -t "$session" Escape
wait_for "$session" 'filter "Edsger"'
tmux send-keys -t "$session" Escape
wait_for "$session" "u-0000"

echo "== a sid not on the page is looked up on the server; an unknown one says so"
tmux send-keys -t "$session" / u-4242 Enter
wait_for "$session" "User u-4242 (Esc back)"
wait_for "$session" "could not load"
tmux send-keys -t "$session" Escape
wait_for "$session" "u-0000"

echo "== a asks first, y runs a pass and shows its summary"
tmux send-keys -t "$session" a
wait_for "$session" "Run an aggregation pass?"
tmux send-keys -t "$session" y
wait_for "$session" "pass #$((last_run + 1)) finished" 30
wait_for "$session" "Pass finished"
tmux send-keys -t "$session" Enter
tmux send-keys -t "$session" 4
wait_for "$session" "last pass #$((last_run + 1))"
wait_for "$session" "node-000"

echo "== q quits and restores the terminal"
tmux send-keys -t "$session" q
wait_for "$session" "TUI-EXIT-CODE=0"
assert_absent "$session" "billing admin"

echo "== a wrong secret shows a clear message"
echo "this-is-not-the-admin-secret" >"$work/wrong.secret"
tmux new-session -d -s "$bad_session" -x 100 -y 30 \
    "'$tui_bin' --url '$url' --secret-file '$work/wrong.secret' 2>>'$work/tui.err'; echo TUI-EXIT-CODE=\$?; sleep 600"
wait_for "$bad_session" "rejected the admin secret from"
wait_for "$bad_session" "$work/wrong.secret"

echo "== SIGTERM quits cleanly too"
pane_pid=$(tmux list-panes -t "$bad_session" -F '#{pane_pid}')
tui_pid=$(pgrep -P "$pane_pid" -f tui-admin | head -n 1)
[ -n "$tui_pid" ] || fail "no tui-admin process under the tmux pane"
kill -TERM "$tui_pid"
wait_for "$bad_session" "TUI-EXIT-CODE=0"
assert_absent "$bad_session" "admin secret rejected"

echo "== non-interactive subcommands"
cli=("$tui_bin" --url "$url" --secret-file "$secret_file")
out=$("${cli[@]}" aggregate --once) || fail "tui-admin aggregate --once failed: $out"
grep -qF "pass #$((last_run + 2)) finished" <<<"$out" || fail "aggregate --once printed no summary: $out"
out=$("${cli[@]}" users --json --limit 1000)
grep -qF "\"user_sid\":\"$user\"" <<<"$out" || fail "users --json lacks $user: $out"
# Capture first: `grep -q` closing the pipe early would fail the command under pipefail.
out=$("${cli[@]}" state) || fail "tui-admin state failed: $out"
grep -qF "node-000" <<<"$out" || fail "state lacks node-000: $out"
if out=$("$tui_bin" --url "$url" --secret-file "$work/wrong.secret" users 2>&1); then
    fail "users with a wrong secret exited 0"
fi
grep -qF "rejected the admin secret" <<<"$out" || fail "wrong secret message unclear: $out"

echo "tui_e2e: all checks passed in $(($(date +%s) - started)) s"
