"""Grafana dashboards as code: `panels` (the shared style) and `build` (the six dashboards)."""
