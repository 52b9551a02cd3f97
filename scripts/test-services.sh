#!/usr/bin/env bash
# Installs (from Debian's packages) and starts the database services the test suite uses,
# on loopback only:
#   PostgreSQL 127.0.0.1:5432, user postgres without password, database test
#   Redis      127.0.0.1:6379
#   MariaDB    127.0.0.1:3306, user root without password, database test
# Idempotent: a service that already answers is left alone, and packages that are already
# installed are not looked up again, so a second run takes about a second.
#
# SECURITY: the passwordless logins configured here (PostgreSQL trust authentication on
# 127.0.0.1/::1, MariaDB root with an empty password) are for the TEST services of a
# development or CI machine only. Never run this script on a machine whose databases hold
# real data: it changes pg_hba.conf and MariaDB's root account.
#
# Usage: scripts/test-services.sh [start|stop|status]   (start is the default)
set -Eeuo pipefail

log() { printf '=== test-services: %s\n' "$*"; }
fail() { printf 'test-services: FAILED: %s\n' "$*" >&2; exit 1; }

if [[ $(id -u) -eq 0 ]]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
  as_root() { sudo "$@"; }
else
  fail "needs root (or sudo) to install and start PostgreSQL, Redis and MariaDB"
fi

# Bounded wait: up to 60 tries half a second apart.
wait_for() { # name, command...
  local name=$1; shift
  local _
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then log "$name answers"; return 0; fi
    sleep 0.5
  done
  fail "$name does not answer 30 s after starting it"
}

postgres_answers() {
  command -v psql >/dev/null 2>&1 &&
    psql -h 127.0.0.1 -p 5432 -U postgres -d test -tAc 'SELECT 1' 2>/dev/null | grep -qx 1
}
redis_answers() {
  command -v redis-cli >/dev/null 2>&1 &&
    redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -qx PONG
}
mariadb_answers() {
  command -v mariadb >/dev/null 2>&1 &&
    mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' test >/dev/null 2>&1
}

install_packages() {
  local missing=()
  command -v pg_ctlcluster >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
    || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server)
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]} from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # policy-rc.d keeps the packages' own init scripts from starting services on install:
  # this script starts them itself, on loopback, with the test settings below.
  local had_policy=0
  [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
  if ((!had_policy)); then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || { ((had_policy)) || as_root rm -f /usr/sbin/policy-rc.d; fail "apt-get install ${missing[*]}"; }
  ((had_policy)) || as_root rm -f /usr/sbin/policy-rc.d
}

start_postgres() {
  if postgres_answers; then log "PostgreSQL answers"; return; fi
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  [[ -n $version ]] || fail "no PostgreSQL server installed under /usr/lib/postgresql"
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$version main"; then
    log "creating PostgreSQL $version cluster main"
    as_root pg_createcluster "$version" main >/dev/null
  fi
  local conf=/etc/postgresql/$version/main
  # TEST SERVICES ONLY: trust authentication for loopback TCP (see the header).
  if ! as_root grep -q 'otel_db test services' "$conf/pg_hba.conf"; then
    log "PostgreSQL: trust authentication on loopback (test services only)"
    as_root sed -i 's/^\(host[[:space:]].*\)$/# \1/' "$conf/pg_hba.conf"
    printf '%s\n' \
      '# otel_db test services: trust on loopback, for a development/CI machine only.' \
      'host    all             all             127.0.0.1/32            trust' \
      'host    all             all             ::1/128                 trust' \
      | as_root tee -a "$conf/pg_hba.conf" >/dev/null
  fi
  as_root sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "$conf/postgresql.conf"
  as_root sed -i "s/^#\?port = .*/port = 5432/" "$conf/postgresql.conf"
  if pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  else
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  wait_for "PostgreSQL (server)" pg_isready -h 127.0.0.1 -p 5432 -q
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -qx 1; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test'
  fi
  wait_for PostgreSQL postgres_answers
}

start_redis() {
  if redis_answers; then log "Redis answers"; return; fi
  log "starting Redis"
  as_root mkdir -p /var/lib/otel-db-test-redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir /var/lib/otel-db-test-redis --logfile /var/lib/otel-db-test-redis/redis.log \
    --pidfile /var/lib/otel-db-test-redis/redis.pid
  wait_for Redis redis_answers
}

start_mariadb() {
  if mariadb_answers; then log "MariaDB answers"; return; fi
  local datadir=/var/lib/mysql
  if [[ ! -d $datadir/mysql ]]; then
    log "initialising MariaDB's data directory"
    as_root mkdir -p "$datadir"
    as_root chown mysql:mysql "$datadir"
    as_root mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db >/dev/null
  fi
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld
  if ! mariadb-admin --protocol=socket -u root status >/dev/null 2>&1; then
    log "starting MariaDB"
    # setsid + nohup: the server outlives this script and the shell that ran it.
    as_root setsid nohup /usr/sbin/mariadbd --user=mysql --datadir="$datadir" \
      --bind-address=127.0.0.1 --port=3306 --socket=/run/mysqld/mysqld.sock \
      --log-error=/var/lib/mysql/otel-db-test.err </dev/null >/dev/null 2>&1 &
    wait_for "MariaDB (socket)" as_root mariadb-admin --protocol=socket -u root status
  fi
  # TEST SERVICES ONLY: root without a password over loopback TCP (see the header).
  log "MariaDB: root without password on loopback (test services only), database test"
  as_root mariadb --protocol=socket -u root <<'SQL'
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS test;
FLUSH PRIVILEGES;
SQL
  wait_for MariaDB mariadb_answers
}

stop_all() {
  local version
  for version in $(ls /usr/lib/postgresql 2>/dev/null); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main stop 2>/dev/null || true
  done
  redis-cli -h 127.0.0.1 -p 6379 shutdown nosave 2>/dev/null || true
  as_root mariadb-admin --protocol=socket -u root shutdown 2>/dev/null || true
  log "stopped"
}

status_all() {
  local rc=0
  if postgres_answers; then log "PostgreSQL answers"; else log "PostgreSQL DOWN"; rc=1; fi
  if redis_answers; then log "Redis answers"; else log "Redis DOWN"; rc=1; fi
  if mariadb_answers; then log "MariaDB answers"; else log "MariaDB DOWN"; rc=1; fi
  return $rc
}

case ${1:-start} in
  start)
    if postgres_answers && redis_answers && mariadb_answers; then
      log "PostgreSQL, Redis and MariaDB answer"; exit 0
    fi
    install_packages
    start_postgres
    start_redis
    start_mariadb
    ;;
  stop) stop_all ;;
  status) status_all ;;
  *) fail "usage: $0 [start|stop|status]" ;;
esac
