# Sourced by .ci/run: a throwaway PostgreSQL cluster for the clinic database tests.
# Starts the server (as the `postgres` system user when run as root) in a temporary folder on a
# free local port, exports STIMCTL_TEST_DATABASE_URL, and stops and removes it at exit.
# When it cannot, it says so and the PostgreSQL tests are skipped (SQLite ones still run).

stimctl_pg_start() {
    local bin dir port as
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$bin" ] || bin=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")
    if [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
        echo ".ci/run: PostgreSQL server binaries not found: the PostgreSQL tests are SKIPPED" >&2
        return 0
    fi
    as=()
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo ".ci/run: running as root and no 'postgres' user: PostgreSQL tests SKIPPED" >&2
            return 0
        fi
        as=(runuser -u postgres --)
    fi
    dir=$(mktemp -d /tmp/stimctl-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if ! "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1; then
        echo ".ci/run: initdb failed (see below): PostgreSQL tests SKIPPED" >&2
        tail -n 5 "$dir/initdb.log" >&2
        rm -rf "$dir"
        return 0
    fi
    if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; then
        echo ".ci/run: the PostgreSQL server did not start: PostgreSQL tests SKIPPED" >&2
        tail -n 5 "$dir/server.log" >&2
        rm -rf "$dir"
        return 0
    fi
    STIMCTL_PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop)
    STIMCTL_PG_DIR=$dir
    trap stimctl_pg_stop EXIT
    export STIMCTL_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    echo ".ci/run: throwaway PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir); the database tests run against it too" >&2
}

stimctl_pg_stop() {
    "${STIMCTL_PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$STIMCTL_PG_DIR"
}
