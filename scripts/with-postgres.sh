#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL: a fresh cluster (initdb) in a temp dir, on a free
# loopback port, stopped and deleted when the command ends, whatever its outcome. The command
# finds it in BILLING_TEST_PG_URL (postgres://billing@127.0.0.1:PORT/billing_test, trust auth).
#   scripts/with-postgres.sh cargo test --workspace
# BILLING_PG_FSYNC=on makes commits durable (benchmarks); tests run with fsync off.
# Installs the Debian `postgresql` package when no PostgreSQL server binaries are found. As root,
# the cluster runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS…]" >&2
    exit 2
fi

find_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ] && { pg_config --bindir; return 0; }
    return 1
}

bindir=$(find_bindir || true)
if [ -z "$bindir" ]; then
    echo "with-postgres: no PostgreSQL server found; installing the Debian package postgresql" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bindir=$(find_bindir) || {
        echo "with-postgres: PostgreSQL is still missing after apt-get install postgresql;" \
            "install PostgreSQL 15 (initdb, pg_ctl) and run again" >&2
        exit 1
    }
fi

work=$(mktemp -d -t billing-pg.XXXXXX)
as_owner=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$work"
    as_owner=(runuser -u postgres --)
fi
data="$work/data"

stop() {
    local status=$?
    if [ -f "$data/postmaster.pid" ]; then
        "${as_owner[@]}" "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap stop EXIT
trap 'exit 130' INT TERM

"${as_owner[@]}" "$bindir/initdb" -D "$data" -U billing --auth=trust -E UTF8 --no-instructions \
    >"$work/initdb.log" 2>&1 || {
    echo "with-postgres: initdb failed:" >&2
    cat "$work/initdb.log" >&2
    exit 1
}

# A random free port: try a few, since another process may take one between check and start.
started=""
for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    if "${as_owner[@]}" "$bindir/pg_ctl" -D "$data" -l "$work/server.log" -w -t 30 \
        -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=${BILLING_PG_FSYNC:-off}" start >/dev/null 2>&1; then
        started=yes
        break
    fi
done
if [ -z "$started" ]; then
    echo "with-postgres: PostgreSQL did not start; its log:" >&2
    cat "$work/server.log" >&2 || true
    exit 1
fi

"$bindir/createdb" -h 127.0.0.1 -p "$port" -U billing billing_test
export BILLING_TEST_PG_URL="postgres://billing@127.0.0.1:$port/billing_test"
version=$(psql "$BILLING_TEST_PG_URL" -Atc "show server_version" 2>/dev/null || echo "?")
echo "with-postgres: PostgreSQL $version at $BILLING_TEST_PG_URL (stopped and deleted at exit)" >&2

"$@"
