// Package monitoring ships shoal's Prometheus rules (shoal-rules.yaml:
// recording rules for the P2P share of each node's pulls and alerts for a
// daemon down, a node whose pulls all come from the origin, chunk verify
// failures and more; promtool unit tests in shoal-rules-test.yaml) and its
// Grafana dashboard (shoal-dashboard.json: "did P2P serve this pull?").
// The files are embedded, so a tool can write out exactly what the tests
// checked: every metric they name exists in a real daemon's or seeder's
// /metrics.
package monitoring

import _ "embed"

// Rules is shoal-rules.yaml, a Prometheus rule file.
//
//go:embed shoal-rules.yaml
var Rules []byte

// Dashboard is shoal-dashboard.json, a Grafana dashboard.
//
//go:embed shoal-dashboard.json
var Dashboard []byte
