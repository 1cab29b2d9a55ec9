# Sourced by the end-to-end scripts (smoke_aggregate.sh, failover.sh): starting a server and
# calling its JSON-RPC API. The script that sources this defines fail() (print and exit 1) and
# sets $work (a temp dir for logs), $pids (an array of processes to stop at exit) and $secret
# (the admin secret).

# start_listening NAME COMMAND...: starts COMMAND in the background, logging to
# $work/NAME.{out,err}, and waits up to 60 s for its "listening on http://..." line; sets
# $listen_url and $last_pid, and adds the process to $pids.
start_listening() {
    local name=$1
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
    last_pid=$!
    pids+=("$last_pid")
    local deadline=$(($(date +%s) + 60))
    listen_url=""
    while [ -z "$listen_url" ]; do
        listen_url=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/$name.out" | head -n1)
        kill -0 "$last_pid" 2>/dev/null || fail "$name exited before listening (see $work/$name.err)"
        [ "$(date +%s)" -lt "$deadline" ] || fail "$name did not print 'listening on' within 60 s"
        [ -n "$listen_url" ] || sleep 0.1
    done
}

# rpc_at URL METHOD PARAMS_JSON: one JSON-RPC call with the admin secret; prints its result,
# fails on an error or no answer.
rpc_at() {
    local reply
    reply=$(curl -sS --max-time 60 -H "Authorization: Bearer $secret" \
        -H 'Content-Type: application/json' \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":$3}" "$1") ||
        fail "$2 on $1: the server did not answer"
    if [ "$(jq -r 'has("error")' <<<"$reply")" = true ]; then
        fail "$2 on $1 returned an error: $(jq -c .error <<<"$reply")"
    fi
    jq -c .result <<<"$reply"
}
