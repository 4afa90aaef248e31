// Package node runs one lbd node: it loads and validates the config file, builds the
// dataplane from it, reloads on request without dropping traffic, and serves the admin
// API and metrics that lbctl and Prometheus read. It is the only package that knows the
// dataplane, vip and cluster packages together.
package node
