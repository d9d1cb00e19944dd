#!/bin/sh
# Runs once, on the first start of the postgres container (docker-entrypoint-initdb.d):
# one database per component, named in MLOPS_DATABASES (comma-separated).
set -eu
for db in $(echo "${MLOPS_DATABASES}" | tr ',' ' '); do
  echo "creating database ${db}"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -c "CREATE DATABASE \"${db}\""
done
