#!/bin/bash
# Runs once, after InfluxDB's initial setup: map database "<bucket>" (retention policy
# "autogen") to the bucket, so InfluxQL queries (Grafana dashboards, export) reach it.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create --bucket-id "${bucket_id}" --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
  --rp autogen --default
