#!/usr/bin/env bash
# A small PostgreSQL 15 cluster whose autovacuum starts within a second, for the tests of a
# migration meeting an autovacuum (tests/util/test_autovacuum.py):
# `scripts/pg-autovacuum-cluster.sh up|down`.
#
#   up    cluster 15/autovacuum on port 5436 (trust from 127.0.0.1), made once, started:
#         autovacuum_naptime 1s (the default 1min would keep a test waiting), small buffers.
#         Prints its URL. Idempotent.
#   down  stopped and dropped.
#
# Needs root (or the postgres user) and Debian's postgresql-common tools. Waits are bounded.
set -euo pipefail
VERSION=${PG_VERSION:-15}
PORT=${AUTOVACUUM_PORT:-5436}
NAME=${AUTOVACUUM_CLUSTER:-autovacuum}
WAIT_S=${AUTOVACUUM_WAIT_S:-60}

as_postgres() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }

case "${1:-}" in
  up)
    exec 9>/tmp/softbee-pg-autovacuum.lock
    flock -w "$WAIT_S" 9 || { echo "pg-autovacuum: another set-up holds the lock for ${WAIT_S}s"; exit 1; }
    if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$VERSION/$NAME"; then
      pg_createcluster "$VERSION" "$NAME" -p "$PORT" \
        -o autovacuum_naptime=1s -o shared_buffers=32MB -o max_connections=40 \
        -- --auth-host=trust --auth-local=trust >/dev/null
    fi
    # 9>&-: the server must not inherit (and hold) the set-up lock
    as_postgres timeout "$WAIT_S" pg_ctlcluster "$VERSION" "$NAME" start 2>/dev/null 9>&- || true
    timeout "$WAIT_S" bash -c "until pg_isready -q -h 127.0.0.1 -p $PORT; do sleep 0.3; done" || {
      echo "pg-autovacuum: 15/$NAME did not accept connections on port $PORT within ${WAIT_S}s"; exit 1; }
    echo "postgresql://postgres@127.0.0.1:$PORT"
    ;;
  down)
    as_postgres timeout "$WAIT_S" pg_ctlcluster "$VERSION" "$NAME" stop -m fast 2>/dev/null || true
    pg_dropcluster "$VERSION" "$NAME" 2>/dev/null || true
    ;;
  *) echo "usage: scripts/pg-autovacuum-cluster.sh up|down" >&2; exit 2 ;;
esac
