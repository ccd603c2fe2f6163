#!/bin/sh
# Run once by the postgres image on an empty data directory
# (docker-entrypoint-initdb.d, see compose.ha.yaml): the gmailtls role, not a
# superuser, and the database it owns. In PostgreSQL 15 the owner of a
# database owns its public schema (pg_database_owner), so gmailtls may
# create its tables there; nothing else is granted (docs/operations.md,
# "PostgreSQL requirements").
set -eu
: "${GMAILTLS_DB_PASSWORD:?set GMAILTLS_DB_PASSWORD in docker/postgres.env}"
psql -v ON_ERROR_STOP=1 -v pw="$GMAILTLS_DB_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE gmailtls LOGIN PASSWORD :'pw';
CREATE DATABASE gmailtls OWNER gmailtls;
REVOKE ALL ON DATABASE gmailtls FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE gmailtls TO gmailtls;
SQL
