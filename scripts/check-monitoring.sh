#!/usr/bin/env bash
# Checks the monitoring assets in docs/: the Prometheus alerting rules (syntax and unit tests)
# and the Grafana dashboard (valid JSON, only known metric names, PromQL that parses, unique
# panel ids). Needs promtool (Debian package prometheus, installed here if missing) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found; installing the Debian package prometheus"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; } \
        || ! command -v promtool >/dev/null 2>&1; then
        echo "error: promtool is required. Install it with 'apt-get install prometheus' (Debian/Ubuntu, as root)," >&2
        echo "       or take promtool from a release archive at https://prometheus.io/download/ and put it on PATH." >&2
        exit 1
    fi
fi
command -v python3 >/dev/null 2>&1 || { echo "error: python3 is required" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

promtool check rules docs/alerts.yml >"$tmp/out" 2>&1 || { cat "$tmp/out"; echo "FAIL promtool check rules docs/alerts.yml"; exit 1; }
echo "ok   promtool check rules docs/alerts.yml ($(grep -o '[0-9]* rules found' "$tmp/out"))"

promtool test rules docs/alerts_test.yml >"$tmp/out" 2>&1 || { cat "$tmp/out"; echo "FAIL promtool test rules docs/alerts_test.yml"; exit 1; }
echo "ok   promtool test rules docs/alerts_test.yml"

# Dashboard and alert metric names; writes the dashboard's expressions as recording rules
# into $tmp/dashboard-rules.json so that promtool parses them below.
python3 - docs/grafana-dashboard.json docs/alerts.yml "$tmp/dashboard-rules.json" <<'EOF'
import json, re, sys

dashboard_path, alerts_path, rules_out = sys.argv[1:4]

COUNTERS = {
    "billing_records_total", "billing_files_rejected_total", "billing_passes_total",
    "billing_source_requests_total", "billing_forge_retries_total", "billing_rpc_requests_total",
}
HISTOGRAMS = {"billing_pass_duration_seconds", "billing_rpc_request_duration_seconds"}
GAUGES = {
    "billing_last_pass_timestamp_seconds", "billing_last_successful_pass_timestamp_seconds",
    "billing_users", "billing_users_overdrawn", "billing_balance_cents", "billing_held_records",
    "billing_rejected_items", "billing_nodes", "billing_nodes_stale",
    "billing_node_newest_hour_age_seconds", "billing_node_last_consumed_timestamp_seconds",
    "billing_node_stale", "billing_ledger_size_bytes", "billing_ledger_up",
}
ALLOWED = COUNTERS | HISTOGRAMS | GAUGES
TOKEN = re.compile(r"billing_[a-z_]+")

def unknown_names(text):
    bad = set()
    for tok in TOKEN.findall(text):
        name = tok
        for suffix in ("_bucket", "_sum", "_count"):
            if tok.endswith(suffix) and tok[: -len(suffix)] in HISTOGRAMS:
                name = tok[: -len(suffix)]
                break
        else:
            if tok in HISTOGRAMS:  # a classic histogram has no series of its bare name
                bad.add(tok)
                continue
        if name not in ALLOWED:
            bad.add(tok)
    return bad

failed = False
def check(ok, what, detail=""):
    global failed
    print(("ok   " if ok else "FAIL ") + what + (": " + detail if detail and not ok else ""))
    failed |= not ok

try:
    with open(dashboard_path) as f:
        dash = json.load(f)
except (OSError, ValueError) as e:
    check(False, "dashboard JSON parses", str(e))
    sys.exit(1)
check(True, "dashboard JSON parses")

def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))

panels = list(walk(dash.get("panels", [])))
ids = [p.get("id") for p in panels]
dups = sorted({i for i in ids if ids.count(i) > 1}, key=str)
check(None not in ids and not dups, "dashboard panel ids unique (%d panels)" % len(panels),
      "missing or duplicate ids %s" % dups)

exprs = []  # (panel title, panel id, refId, expr)
no_targets = []
for p in panels:
    if p.get("type") in ("row", "text"):
        continue
    targets = [t for t in p.get("targets", []) if t.get("expr")]
    if not targets:
        no_targets.append(p.get("title"))
    exprs += [(p.get("title"), p.get("id"), t.get("refId"), t["expr"]) for t in targets]
check(not no_targets, "every dashboard panel has a query", "no expr in %s" % no_targets)

bad = ["panel %s (%s) %s: %s" % (pid, title, ref, sorted(unknown_names(e)))
       for title, pid, ref, e in exprs if unknown_names(e)]
check(not bad, "dashboard exprs use only known metric names (%d exprs)" % len(exprs), "; ".join(bad))

with open(alerts_path) as f:
    bad_alerts = unknown_names(f.read())
check(not bad_alerts, "alerts.yml uses only known metric names", str(sorted(bad_alerts)))

templ = dash.get("templating", {}).get("list", [])
check(dash.get("uid") and dash.get("title") == "Billing aggregator"
      and any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in templ),
      "dashboard has uid, title and a prometheus datasource variable")

# Grafana variables replaced by values PromQL accepts, for the parse check.
def substitute(e):
    e = e.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", e)
rules = {"groups": [{"name": "dashboard", "rules": [
    {"record": "dashboard:panel_%s_%s" % (pid, re.sub(r"\W", "_", str(ref))), "expr": substitute(e)}
    for _, pid, ref, e in exprs]}]}
with open(rules_out, "w") as f:
    json.dump(rules, f)

sys.exit(1 if failed else 0)
EOF

promtool check rules "$tmp/dashboard-rules.json" >"$tmp/out" 2>&1 || { cat "$tmp/out"; echo "FAIL dashboard exprs parse as PromQL"; exit 1; }
echo "ok   dashboard exprs parse as PromQL"
echo "all monitoring checks passed"
