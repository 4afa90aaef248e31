// Package node runs one lbd node: it loads and validates the config file, builds the
// dataplane from it, reloads on request without dropping traffic, and serves the admin
// API and metrics that lbctl and Prometheus read. It is the only package that knows the
// dataplane, vip and cluster packages together.
//
// The admin API's wire types and its client live in node/api, which imports nothing of
// lbd: the handlers (admin.go, control.go, sticky.go, vip_api.go) answer api types, and
// wire.go copies the parts' structs into them, so a change to a part's struct does not
// change the API. release.go is `lbd release`: removing a dead node's VIPs.
package node
