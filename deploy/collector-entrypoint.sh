#!/bin/sh
# With a user config mounted at /config/config.toml, collect from the user's devices;
# without one, run the demo against the built-in simulators into the stack's InfluxDB. The
# demo's store is on the /data volume: its history is generated on the first start only, and
# a restart collects live on top of it.
set -eu
if [ -f /config/config.toml ]; then
  exec ev-collector run --config /config/config.toml
fi
echo "no /config/config.toml: running the demo (simulated charger, evcc, ev.energy, OVMS)" >&2
exec ev-collector demo --workdir /data/demo --history "${DEMO_HISTORY:-7d}" --duration 0 \
  --influx-api v2 --influx-url "${INFLUX_URL}" --influx-org "${INFLUX_ORG}" \
  --influx-bucket "${INFLUX_BUCKET}"
