#!/usr/bin/env bash
# Start a real CKAN 2.12 for tests and local use: catalog/ckan-up.sh [NAME] [PORT]  (default: main 5000)
#
# Idempotent and fast on a second run. As root on a fresh Debian 12: installs the Debian packages
# (PostgreSQL 15, Redis, libpq-dev, gcc), starts PostgreSQL and Redis on loopback, starts the
# Solr-protocol dev index (preau.catalog.solrlite, one shared server, one core per instance),
# builds CKAN 2.12 + ckanext-dcat in its own venv (catalog/.local/venv), then per instance NAME:
# databases ckan_NAME / datastore_NAME, storage catalog/.local/NAME/storage, ckan.ini, db init,
# datastore permissions, a sysadmin and two plain users with API tokens, gunicorn (2 workers) on
# 127.0.0.1:PORT. Writes catalog/.local/NAME/ckan.env (mode 600). Tokens are never printed.
set -euo pipefail

NAME="${1:-main}"
PORT="${2:-5000}"
if [[ ! "$NAME" =~ ^[a-z][a-z0-9_]{0,30}$ ]]; then
  echo "ckan-up: instance name must match [a-z][a-z0-9_]* (got '$NAME')" >&2; exit 2
fi
if [[ ! "$PORT" =~ ^[0-9]+$ ]]; then echo "ckan-up: bad port '$PORT'" >&2; exit 2; fi

CATALOG="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$CATALOG")"
LOCAL="$CATALOG/.local"
VENV="$LOCAL/venv"
INST="$LOCAL/$NAME"
INI="$INST/ckan.ini"
ENVFILE="$INST/ckan.env"
SOLR_PORT="${PREAU_SOLRLITE_PORT:-8983}"
REDIS_PORT=6379
CKAN_VERSION=2.12.0
DCAT_VERSION=2.4.4
PYTHON="${PYTHON:-python3}"
URL="http://127.0.0.1:$PORT"
say() { echo "ckan-up[$NAME]: $*" >&2; }
umask 077
mkdir -p "$LOCAL" "$INST/storage"

if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
as_postgres() { (cd / && $SUDO runuser -u postgres -- "$@"); }

# ---- 1. Debian packages -------------------------------------------------------------------
PKGS="postgresql-15 redis-server libpq-dev gcc curl"
# psycopg2 is built from source: it needs Python's headers (a Debian python3 needs python3-dev)
if ! "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  PKGS="$PKGS python3-dev"
fi
if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  PKGS="$PKGS python3-venv"
fi
if ! dpkg -s $PKGS >/dev/null 2>&1; then
  say "apt-get install $PKGS"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $PKGS >/dev/null
fi

# ---- 2. PostgreSQL 15 and Redis on loopback -----------------------------------------------
if ! pg_lsclusters -h 2>/dev/null | grep -q '^15 *main'; then
  $SUDO pg_createcluster 15 main >/dev/null
fi
if ! pg_lsclusters -h | grep -q '^15 *main .*online'; then
  say "starting PostgreSQL 15"
  $SUDO pg_ctlcluster --skip-systemctl-redirect 15 main start
fi
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done

if ! redis-cli -h 127.0.0.1 -p $REDIS_PORT ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port $REDIS_PORT --save "" --appendonly no \
    --logfile "$LOCAL/redis.log" >/dev/null
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p $REDIS_PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# ---- 3. Solr-protocol dev index (shared; one core per instance) ---------------------------
SOLR_URL="http://127.0.0.1:$SOLR_PORT/solr"
if ! curl -sf "$SOLR_URL/$NAME/admin/ping" >/dev/null 2>&1; then
  say "starting solrlite (test/dev index, not Solr) on $SOLR_PORT"
  (cd / && PYTHONPATH="$ROOT/src" exec setsid "$PYTHON" -m preau.catalog.solrlite \
      --port "$SOLR_PORT" --db "$LOCAL/solrlite.db") </dev/null >"$LOCAL/solrlite.log" 2>&1 &
  echo $! >"$LOCAL/solrlite.pid"
  for _ in $(seq 100); do curl -sf "$SOLR_URL/$NAME/admin/ping" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf "$SOLR_URL/$NAME/admin/ping" >/dev/null || { say "solrlite did not start"; cat "$LOCAL/solrlite.log" >&2; exit 1; }
fi

# ---- 4. CKAN's own virtual environment ----------------------------------------------------
STAMP="$VENV/.preau-ckan-$CKAN_VERSION-dcat-$DCAT_VERSION"
if [ ! -f "$STAMP" ]; then
  say "building CKAN $CKAN_VERSION venv"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "ckan[requirements]==$CKAN_VERSION" "ckanext-dcat==$DCAT_VERSION" gunicorn 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  "$VENV/bin/python" -c "import ckan, ckanext.dcat, gunicorn" || { say "CKAN install failed"; exit 1; }
  touch "$STAMP"
fi
CKAN="$VENV/bin/ckan"

# ---- 5. Databases and roles ---------------------------------------------------------------
SECRETS="$INST/secrets.env"
if [ ! -f "$SECRETS" ]; then
  {
    echo "DB_PASS=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
    echo "RO_PASS=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')"
    echo "ADMIN_PASS=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(18))')"
  } >"$SECRETS"
fi
# shellcheck disable=SC1090
. "$SECRETS"
DB_USER="ckan_$NAME"; RO_USER="dsro_$NAME"; DB="ckan_$NAME"; DS="datastore_$NAME"
psql_q() { as_postgres psql -qtAX -v ON_ERROR_STOP=1 "$@"; }
ensure_role() {
  if [ -z "$(psql_q -c "SELECT 1 FROM pg_roles WHERE rolname='$1'")" ]; then
    psql_q -c "CREATE ROLE $1 LOGIN PASSWORD '$2'"
  else
    psql_q -c "ALTER ROLE $1 LOGIN PASSWORD '$2'"
  fi
}
ensure_db() {
  if [ -z "$(psql_q -c "SELECT 1 FROM pg_database WHERE datname='$1'")" ]; then
    psql_q -c "CREATE DATABASE $1 OWNER $2 ENCODING 'utf-8' TEMPLATE template0"
  fi
}
# at every start, not once: another checkout on the same machine (a clean clone rehearsing CI)
# sets the same roles to its own passwords, and this checkout's CKAN then failed to boot
ensure_role "$DB_USER" "$DB_PASS"
ensure_role "$RO_USER" "$RO_PASS"
ensure_db "$DB" "$DB_USER"
ensure_db "$DS" "$DB_USER"

# ---- 6. ckan.ini (generated once: its secrets sign the API tokens) ------------------------
REDIS_DB=$(( $(printf '%s' "$NAME" | cksum | cut -d' ' -f1) % 16 ))
if [ ! -f "$INI" ]; then
  say "writing $INI"
  "$CKAN" generate config "$INI.tmp" >/dev/null
  "$CKAN" config-tool "$INI.tmp" \
    "sqlalchemy.url = postgresql://$DB_USER:$DB_PASS@127.0.0.1:5432/$DB" \
    "ckan.site_url = $URL" \
    "ckan.site_id = $NAME" \
    "solr_url = $SOLR_URL/$NAME" \
    "ckan.redis.url = redis://127.0.0.1:$REDIS_PORT/$REDIS_DB" \
    "ckan.plugins = activity datastore dcat structured_data" \
    "ckan.datastore.write_url = postgresql://$DB_USER:$DB_PASS@127.0.0.1:5432/$DS" \
    "ckan.datastore.read_url = postgresql://$RO_USER:$RO_PASS@127.0.0.1:5432/$DS" \
    "ckan.datastore.sqlsearch.enabled = true" \
    "ckan.storage_path = $INST/storage" \
    "ckan.max_resource_size = 100" \
    "ckan.site_title = Préau ($NAME)" \
    "ckan.locale_default = fr" \
    "ckan.auth.create_user_via_web = false" \
    "ckan.requests.timeout = 10" >/dev/null
  # quieter logs
  sed -i 's/^level = INFO$/level = WARNING/; s/^level = DEBUG$/level = WARNING/' "$INI.tmp"
  mv "$INI.tmp" "$INI"
fi
export CKAN_INI="$INI"

# ---- 7. Database schema, DataStore permissions --------------------------------------------
if [ ! -f "$INST/.db-init" ]; then
  say "ckan db init"
  "$CKAN" -c "$INI" db init >"$INST/db-init.log" 2>&1 || { cat "$INST/db-init.log" >&2; exit 1; }
  "$CKAN" -c "$INI" datastore set-permissions 2>/dev/null \
    | as_postgres psql -qX -v ON_ERROR_STOP=1 -d "$DS" >/dev/null
  touch "$INST/.db-init"
fi

# ---- 9. gunicorn (2 workers) on 127.0.0.1:PORT --------------------------------------------
cat >"$INST/wsgi.py.tmp" <<'EOF'
import os
from ckan.cli import CKANConfigLoader
from ckan.config.middleware import make_app

application = make_app(CKANConfigLoader(os.environ["CKAN_INI"]).get_config())
EOF
cmp -s "$INST/wsgi.py.tmp" "$INST/wsgi.py" 2>/dev/null && rm "$INST/wsgi.py.tmp" || mv "$INST/wsgi.py.tmp" "$INST/wsgi.py"
alive() { [ -f "$INST/gunicorn.pid" ] && kill -0 "$(cat "$INST/gunicorn.pid")" 2>/dev/null; }
ready() { curl -sf -o /dev/null "$URL/api/3/action/status_show"; }
if ! (alive && ready); then
  if alive; then kill "$(cat "$INST/gunicorn.pid")"; sleep 1; fi
  if curl -s -o /dev/null "$URL/" 2>/dev/null; then say "port $PORT is taken by another program"; exit 1; fi
  say "starting gunicorn on $URL"
  (cd "$INST" && "$VENV/bin/gunicorn" --workers 2 --bind "127.0.0.1:$PORT" --timeout 300 \
     --daemon --pid "$INST/gunicorn.pid" --error-logfile "$INST/gunicorn.log" \
     --env "CKAN_INI=$INI" --chdir "$INST" wsgi:application)
  for _ in $(seq 120); do ready && break; sleep 0.5; done
  ready || { say "CKAN did not answer on $URL"; tail -n 30 "$INST/gunicorn.log" >&2; exit 1; }
fi
# ---- 10. Users and API tokens (sysadmin by the CLI, the others through the API) ------------
if [ ! -f "$ENVFILE" ] || ! grep -q '^PREAU_CKAN_USER2_TOKEN=' "$ENVFILE"; then
  say "creating sysadmin and users, API tokens"
  "$CKAN" -c "$INI" user add preau_admin "email=admin@$NAME.preau.invalid" "password=$ADMIN_PASS" \
    >/dev/null 2>&1 || true   # fails when the user exists: fine
  "$CKAN" -c "$INI" sysadmin add preau_admin >/dev/null 2>&1 </dev/null
  PREAU_ADMIN_TOKEN="$("$CKAN" -c "$INI" user token add preau_admin "preau-$(date +%s)" 2>/dev/null \
    | tail -n 1 | tr -d '[:space:]')" \
  PREAU_USER_PASS="$ADMIN_PASS" "$VENV/bin/python" "$CATALOG/ckan_users.py" \
    "$URL" "$NAME" "$INI" "$SOLR_URL/$NAME" "$ENVFILE"
fi
say "ready on $URL (env: ${ENVFILE#"$ROOT"/})"
# the issue's documented location: catalog/.local/ckan.env is the main instance
if [ "$NAME" = main ]; then ln -sfn main/ckan.env "$LOCAL/ckan.env"; fi
