#!/bin/sh
# Runs once, at the first start of the PostgreSQL container (an empty data
# volume): a role and a database for the terratask store. Temporal's own
# databases are created by the temporal-schema service.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v pw="$TERRATASK_DB_PASSWORD" <<'SQL'
CREATE ROLE terratask LOGIN PASSWORD :'pw';
CREATE DATABASE terratask OWNER terratask;
SQL
