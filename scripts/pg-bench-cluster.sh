#!/usr/bin/env bash
# A PostgreSQL 15 cluster sized like a production server for the 10M-row benchmark
# (docs/benchmarks.md, "Ten times the rows"): `scripts/pg-bench-cluster.sh up|down`.
#
#   up    cluster 15/bench on port 5435 (trust from 127.0.0.1), made once, started:
#         shared_buffers 6GB (a quarter of this 24 GiB machine), max_wal_size 16GB and
#         checkpoint_timeout 30min (no checkpoint storm in a 10M-row backfill),
#         maintenance_work_mem 1GB. Prints its URL.
#   down  stopped and dropped.
#
# Needs root (or the postgres user) and Debian's postgresql-common tools. Waits are bounded.
set -euo pipefail
VERSION=${PG_VERSION:-15}
PORT=${BENCH_PORT:-5435}
NAME=${BENCH_CLUSTER:-bench}

as_postgres() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }

case "${1:-}" in
  up)
    if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$VERSION/$NAME"; then
      pg_createcluster "$VERSION" "$NAME" -p "$PORT" \
        -o shared_buffers=6GB -o max_wal_size=16GB -o checkpoint_timeout=30min \
        -o maintenance_work_mem=1GB -- --auth-host=trust --auth-local=trust >/dev/null
    fi
    as_postgres timeout 60 pg_ctlcluster "$VERSION" "$NAME" start 2>/dev/null || true
    timeout 60 bash -c "until pg_isready -q -h 127.0.0.1 -p $PORT; do sleep 0.5; done"
    echo "postgresql://postgres@127.0.0.1:$PORT"
    ;;
  down)
    as_postgres timeout 60 pg_ctlcluster "$VERSION" "$NAME" stop -m fast 2>/dev/null || true
    pg_dropcluster "$VERSION" "$NAME" 2>/dev/null || true
    ;;
  *) echo "usage: scripts/pg-bench-cluster.sh up|down" >&2; exit 2 ;;
esac
