#!/bin/sh
# Starts PostgreSQL, creating the cluster on first start from POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB as the official image does. Only shell builtins
# and PostgreSQL's own programs are used: the image has nothing else.
set -eu

# "docker run image -c fsync=off" and "docker run image postgres -c ..." both work.
if [ "${1:-postgres}" = "postgres" ]; then
  [ "$#" -gt 0 ] && shift
elif [ "${1#-}" = "$1" ]; then
  exec "$@"  # another program entirely
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "docker-entrypoint: POSTGRES_PASSWORD must be set (this image has no trust mode)" >&2
    exit 1
  fi
  printf '%s\n' "$POSTGRES_PASSWORD" | initdb -D "$PGDATA" -U "$POSTGRES_USER" \
    --pwfile=/dev/stdin --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C --no-instructions
  # Clients come from outside the container (the published port), not only loopback.
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != "postgres" ]; then
    printf 'CREATE DATABASE "%s";\n' "$POSTGRES_DB" \
      | postgres --single -D "$PGDATA" postgres > /dev/null
  fi
  echo "docker-entrypoint: created the cluster, user $POSTGRES_USER, database $POSTGRES_DB"
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' \
  -c unix_socket_directories=/var/run/postgresql "$@"
