#!/usr/bin/env bash
# A streaming replica of the local PostgreSQL 15 cluster, for the replica-lag throttle
# (docs/reliability.md): `scripts/pg-replica.sh up|down|status`. Idempotent; every wait bounded.
#
#   up      the primary (15/main, port 5432) accepts replication from 127.0.0.1 (trust, one
#           pg_hba line added once, then a reload); cluster 15/replica on port 5433 is made by
#           pg_createcluster + pg_basebackup -R, started, and waited for until it streams.
#           Its WAL is kept for it in slot softbee_replica (at most max_slot_wal_keep_size,
#           set to 1GB when unlimited).
#   down    the replica cluster is stopped and dropped, and its slot (the pg_hba line stays).
#   status  "streaming" and exit 0, or what is missing and exit 1.
#
# Needs root (or the postgres user) and Debian's postgresql-common tools.
set -euo pipefail
VERSION=${PG_VERSION:-15}
PRIMARY_PORT=${PRIMARY_PORT:-5432}
PORT=${REPLICA_PORT:-5433}
NAME=${REPLICA_CLUSTER:-replica}
WAIT_S=${REPLICA_WAIT_S:-60}
SLOT=softbee_$NAME
HBA=/etc/postgresql/$VERSION/main/pg_hba.conf
DATA=/var/lib/postgresql/$VERSION/$NAME
LINE="host replication all 127.0.0.1/32 trust  # softbee: scripts/pg-replica.sh"

as_postgres() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }
psql_on() { psql -h 127.0.0.1 -p "$1" -U postgres -XAtqc "$2"; }

streaming() {
  [ "$(psql_on "$PRIMARY_PORT" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = '$NAME'" 2>/dev/null)" -ge 1 ] 2>/dev/null \
    && psql_on "$PORT" "SELECT pg_is_in_recovery()" >/dev/null 2>&1
}

up() {
  exec 9>/tmp/softbee-pg-replica.lock
  flock -w "$WAIT_S" 9 || { echo "pg-replica: another set-up holds /tmp/softbee-pg-replica.lock for ${WAIT_S}s"; exit 1; }
  if streaming; then echo "pg-replica: 15/$NAME already streaming on port $PORT"; return; fi
  if ! grep -q "^host replication all 127.0.0.1/32 trust" "$HBA"; then
    echo "$LINE" >> "$HBA"
    as_postgres pg_ctlcluster "$VERSION" main reload
  fi
  if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$VERSION/$NAME"; then
    pg_createcluster "$VERSION" "$NAME" -p "$PORT" >/dev/null
    rm -rf "${DATA:?}"/*
    # A slot keeps the WAL the replica has not received (a busy primary recycles it before the
    # replica starts otherwise); max_slot_wal_keep_size bounds what a stopped replica can hold.
    psql_on "$PRIMARY_PORT" "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT' AND NOT active" >/dev/null
    if [ "$(psql_on "$PRIMARY_PORT" "SHOW max_slot_wal_keep_size")" = "-1" ]; then
      psql_on "$PRIMARY_PORT" "ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'" >/dev/null
      psql_on "$PRIMARY_PORT" "SELECT pg_reload_conf()" >/dev/null
    fi
    as_postgres pg_basebackup -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$DATA" -R -X stream \
      -C -S "$SLOT" -d "application_name=$NAME"
  fi
  # The tests read the replica as the primary is read: user postgres, trust from 127.0.0.1.
  REPLICA_HBA=/etc/postgresql/$VERSION/$NAME/pg_hba.conf
  if ! grep -q "^host all all 127.0.0.1/32 trust" "$REPLICA_HBA"; then
    sed -i "1i host all all 127.0.0.1/32 trust  # softbee: scripts/pg-replica.sh" "$REPLICA_HBA"
    as_postgres pg_ctlcluster "$VERSION" "$NAME" reload 2>/dev/null 9>&- || true
  fi
  as_postgres pg_ctlcluster "$VERSION" "$NAME" start 2>/dev/null 9>&- || true  # the server must not hold the lock
  for _ in $(seq 1 "$WAIT_S"); do
    if streaming; then echo "pg-replica: 15/$NAME streaming from port $PRIMARY_PORT on port $PORT"; return; fi
    sleep 1
  done
  echo "pg-replica: 15/$NAME did not stream within ${WAIT_S}s (see /var/log/postgresql/postgresql-$VERSION-$NAME.log)"
  exit 1
}

down() {
  if pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$VERSION/$NAME"; then
    pg_dropcluster "$VERSION" "$NAME" --stop
  fi
  psql_on "$PRIMARY_PORT" "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT'" >/dev/null
  echo "pg-replica: 15/$NAME dropped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if streaming; then echo streaming; else echo "not streaming"; exit 1; fi ;;
  *) echo "usage: $0 up|down|status"; exit 2 ;;
esac
