// Package opskit holds the tests of the operations kit: the Prometheus alert
// rules (deploy/prometheus/alerts.yml, with promtool's unit tests in
// alerts_test.yml) and the Grafana dashboard (deploy/grafana/hires.json).
// They check the rules with the pinned promtool (make tools) and that every
// metric the rules and the dashboard query is one the API or the worker
// exports.
package opskit
