#!/usr/bin/env bash
# Stop what catalog/ckan-up.sh started.
#   catalog/ckan-down.sh                 stop every instance's gunicorn and the solrlite index
#   catalog/ckan-down.sh NAME            stop instance NAME only (solrlite stops with the last one)
#   catalog/ckan-down.sh --purge NAME    stop NAME and delete its databases, storage, index core,
#                                        ckan.ini and ckan.env (the next ckan-up starts fresh)
# PostgreSQL and Redis are left running (system services other programs may use).
set -euo pipefail
CATALOG="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOCAL="$CATALOG/.local"
SOLR_PORT="${PREAU_SOLRLITE_PORT:-8983}"
PURGE=no
if [ "${1:-}" = "--purge" ]; then PURGE=yes; shift; [ -n "${1:-}" ] || { echo "ckan-down: --purge needs NAME" >&2; exit 2; }; fi
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi

stop_pid() {  # pidfile
  local f="$1" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

if [ -n "${1:-}" ]; then NAMES=("$1"); else
  NAMES=(); for d in "$LOCAL"/*/; do [ -f "$d/ckan.ini" ] && NAMES+=("$(basename "$d")"); done
fi
for NAME in "${NAMES[@]}"; do
  [[ "$NAME" =~ ^[a-z][a-z0-9_]{0,30}$ ]] || { echo "ckan-down: bad name '$NAME'" >&2; exit 2; }
  INST="$LOCAL/$NAME"
  stop_pid "$INST/gunicorn.pid"
  echo "ckan-down[$NAME]: stopped" >&2
  if [ "$PURGE" = yes ]; then
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
      --data '{"delete": {"query": "*:*"}}' "http://127.0.0.1:$SOLR_PORT/solr/$NAME/update" || true
    for db in "ckan_$NAME" "datastore_$NAME"; do
      (cd / && $SUDO runuser -u postgres -- psql -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)") >/dev/null 2>&1 || true
    done
    for role in "ckan_$NAME" "dsro_$NAME"; do
      (cd / && $SUDO runuser -u postgres -- psql -qX -c "DROP ROLE IF EXISTS $role") >/dev/null 2>&1 || true
    done
    rm -rf "$INST"
    echo "ckan-down[$NAME]: purged (databases, storage, index core, ckan.ini, ckan.env)" >&2
  fi
done

# stop the shared index when no instance runs any more
running=no
for f in "$LOCAL"/*/gunicorn.pid; do
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && running=yes
done
if [ "$running" = no ]; then stop_pid "$LOCAL/solrlite.pid"; fi
