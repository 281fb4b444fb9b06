#!/usr/bin/env bash
# A PostgreSQL 15 cluster sized like a production server for the 10M-row benchmark
# (docs/benchmarks.md, "Ten times the rows"): `scripts/pg-bench-cluster.sh up|down`.
#
#   up    cluster 15/bench on port 5435 (trust from 127.0.0.1), made once, started:
#         shared_buffers 6GB (a quarter of this 24 GiB machine), max_wal_size 16GB and
#         checkpoint_timeout 30min (no checkpoint storm in a 10M-row backfill),
#         maintenance_work_mem 1GB. Prints its URL.
#         With BENCH_WAL=tmpfs its WAL lives on a tmpfs mount (BENCH_WAL_SIZE, 12G) and
#         max_wal_size is 6GB: a WAL device whose flush costs nothing, standing in for a
#         production server's fast WAL disk, to tell the migration's own stalls from this
#         VM disk's fsync (docs/benchmarks.md, "Ten times the rows"). RAM: the tmpfs plus
#         shared_buffers, about 18 GB at most.
#         With BENCH_DATA=tmpfs too, tablespace bench_tmpfs lives on another tmpfs mount
#         (BENCH_DATA_SIZE, 12G) and shared_buffers is 2GB: the benchmark's --tablespace
#         bench_tmpfs puts each copy there, so no file the run writes or reads is on this
#         VM's disk (the template stays on it). RAM: a copy grows to 7 GB and the WAL to 7 GB
#         in a 10M-row run, plus shared_buffers: about 16 GB at the peak.
#   down  stopped and dropped (and its tmpfs mounts unmounted).
#
# Needs root (or the postgres user) and Debian's postgresql-common tools. Waits are bounded.
set -euo pipefail
VERSION=${PG_VERSION:-15}
PORT=${BENCH_PORT:-5435}
NAME=${BENCH_CLUSTER:-bench}
WAL=${BENCH_WAL:-disk}
WAL_MOUNT=/run/softbee-bench-wal
DATA=${BENCH_DATA:-disk}
DATA_MOUNT=/run/softbee-bench-data

as_postgres() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }

case "${1:-}" in
  up)
    if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$VERSION/$NAME"; then
      wal_size=16GB initdb_wal=() buffers=6GB
      if [ "$WAL" = tmpfs ]; then
        mkdir -p "$WAL_MOUNT"
        mountpoint -q "$WAL_MOUNT" || mount -t tmpfs -o "size=${BENCH_WAL_SIZE:-12G}" tmpfs "$WAL_MOUNT"
        chown postgres:postgres "$WAL_MOUNT"
        wal_size=6GB initdb_wal=(--waldir="$WAL_MOUNT/pg_wal")
      fi
      [ "$DATA" = tmpfs ] && buffers=2GB
      pg_createcluster "$VERSION" "$NAME" -p "$PORT" \
        -o shared_buffers="$buffers" -o max_wal_size="$wal_size" -o checkpoint_timeout=30min \
        -o maintenance_work_mem=1GB -- --auth-host=trust --auth-local=trust "${initdb_wal[@]}" >/dev/null
    elif [ "$WAL" = tmpfs ] && ! mountpoint -q "$WAL_MOUNT"; then
      echo "pg-bench-cluster: 15/$NAME exists with its WAL on disk: run 'down' first" >&2; exit 1
    fi
    as_postgres timeout 60 pg_ctlcluster "$VERSION" "$NAME" start 2>/dev/null || true
    timeout 60 bash -c "until pg_isready -q -h 127.0.0.1 -p $PORT; do sleep 0.5; done"
    if [ "$DATA" = tmpfs ]; then
      mkdir -p "$DATA_MOUNT"
      mountpoint -q "$DATA_MOUNT" || mount -t tmpfs -o "size=${BENCH_DATA_SIZE:-12G}" tmpfs "$DATA_MOUNT"
      chown postgres:postgres "$DATA_MOUNT"
      psql -h 127.0.0.1 -p "$PORT" -U postgres -XAtqc "SELECT 1 FROM pg_tablespace WHERE spcname = 'bench_tmpfs'" | grep -q 1 \
        || psql -h 127.0.0.1 -p "$PORT" -U postgres -XAtqc "CREATE TABLESPACE bench_tmpfs LOCATION '$DATA_MOUNT'"
    fi
    echo "postgresql://postgres@127.0.0.1:$PORT"
    ;;
  down)
    as_postgres timeout 60 pg_ctlcluster "$VERSION" "$NAME" stop -m fast 2>/dev/null || true
    pg_dropcluster "$VERSION" "$NAME" 2>/dev/null || true
    for mount in "$WAL_MOUNT" "$DATA_MOUNT"; do
      if mountpoint -q "$mount"; then umount "$mount"; fi
    done
    ;;
  *) echo "usage: scripts/pg-bench-cluster.sh up|down" >&2; exit 2 ;;
esac
