package dataplane

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dataplane's Prometheus collectors. Per-request code looks its counters
// up once per frontend generation (see frontendMetrics) rather than by label on every
// request.
type metrics struct {
	requests    *prometheus.CounterVec   // frontend, backend, server, class
	duration    *prometheus.HistogramVec // frontend, backend
	connsActive *prometheus.GaugeVec     // frontend
	connsTotal  *prometheus.CounterVec   // frontend
	bytesIn     *prometheus.CounterVec   // frontend: bytes received from clients
	bytesOut    *prometheus.CounterVec   // frontend: bytes sent to clients
	retries     *prometheus.CounterVec   // backend
	errors      *prometheus.CounterVec   // backend, server, reason
	sessions    *prometheus.CounterVec   // backend, server
	noServer    *prometheus.CounterVec   // frontend, backend: requests refused for want of a server
	dropped     *prometheus.CounterVec   // frontend: udp datagrams dropped
	evicted     *prometheus.CounterVec   // frontend: udp sessions ended early to make room (udp.go)
	handovers   *prometheus.CounterVec   // frontend, reason: http connections the loop engine left to fasthttp
	// proxyErrors counts connections closed for their PROXY header, by frontend and reason.
	proxyErrors *prometheus.CounterVec
	// persist holds the metrics of session persistence (persist.go).
	persist *persistMetrics
	// ctl holds the metrics of rate limits and queues (control.go).
	ctl *ctlMetrics
	// health holds the metrics of health checking (health.go).
	health *healthMetrics
	// tls holds the metrics of TLS handshakes and sni routing (tls.go).
	tls *tlsMetrics
	// panics counts the panics recovered while serving a connection (panics.go).
	panics *panicMetric
}

func newMetrics(reg prometheus.Registerer, d *Dataplane) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_http_requests_total",
			Help: "HTTP requests answered, by frontend, backend, server and status class (server is empty when lbd answered itself).",
		}, []string{"frontend", "backend", "server", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lbd_http_request_duration_seconds",
			Help:    "Time from a request's headers read to its response headers sent, by frontend and backend.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"frontend", "backend"}),
		connsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lbd_frontend_connections_active",
			Help: "Client connections (udp: sessions) open now, by frontend.",
		}, []string{"frontend"}),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_frontend_connections_total",
			Help: "Client connections (udp: sessions) accepted, by frontend.",
		}, []string{"frontend"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_frontend_bytes_in_total",
			Help: "Bytes received from clients, by frontend.",
		}, []string{"frontend"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_frontend_bytes_out_total",
			Help: "Bytes sent to clients, by frontend.",
		}, []string{"frontend"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_backend_retries_total",
			Help: "Requests or connections retried on another server, by backend.",
		}, []string{"backend"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_server_errors_total",
			Help: "Failures talking to a server, by backend, server and reason (connect, timeout, reset, empty).",
		}, []string{"backend", "server", "reason"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_server_sessions_total",
			Help: "Requests (http) or connections (tcp, udp sessions) sent to a server, by backend and server.",
		}, []string{"backend", "server"}),
		noServer: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_backend_no_server_total",
			Help: "Requests or connections refused because no server of the backend was available.",
		}, []string{"frontend", "backend"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_frontend_dropped_total",
			Help: "UDP datagrams from clients dropped because the session limit was reached or no server could take a new session, by frontend.",
		}, []string{"frontend"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_udp_sessions_evicted_total",
			Help: "UDP sessions that had not yet seen traffic both ways, ended to make room for a new client when the session limit was reached, by frontend.",
		}, []string{"frontend"}),
		handovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_http_engine_handover_total",
			Help: "HTTP connections the loop engine handed to the fasthttp engine, by frontend and reason (tls, h2c, http10, upgrade, large_body, ...).",
		}, []string{"frontend", "reason"}),
	}
	m.proxyErrors = newProxyErrorsMetric(reg) // proxyproto.go
	m.persist = newPersistMetrics(reg, d)     // persist.go
	m.ctl = newCtlMetrics(reg, d)             // control.go
	m.health = newHealthMetrics(reg)          // health.go
	m.tls = newTLSMetrics(reg)                // tls.go
	m.panics = newPanicMetric(reg)            // panics.go
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.connsActive, m.connsTotal, m.bytesIn,
			m.bytesOut, m.retries, m.errors, m.sessions, m.noServer, m.dropped, m.evicted, m.handovers, &serverCollector{d: d})
	}
	return m
}

var (
	serverStateDesc = prometheus.NewDesc("lbd_server_state",
		"Administrative state of a server: 1 for the state it is in, 0 for the others.",
		[]string{"backend", "server", "state"}, nil)
	serverUpDesc = prometheus.NewDesc("lbd_server_up",
		"Whether health checking considers the server up (1) or down (0).",
		[]string{"backend", "server"}, nil)
	serverActiveDesc = prometheus.NewDesc("lbd_server_active",
		"Requests or connections in flight to a server.",
		[]string{"backend", "server"}, nil)
	serverWeightDesc = prometheus.NewDesc("lbd_server_weight",
		"Effective weight of a server, in units of its configured weight: lower during slow start or when its agent reports a percentage.",
		[]string{"backend", "server"}, nil)
	serverRTDesc = prometheus.NewDesc("lbd_server_response_time_seconds",
		"Moving average of a server's response time (least_time's input).",
		[]string{"backend", "server"}, nil)
)

// serverCollector reports the live per-server values from the current backends at scrape
// time, so servers removed by a reload disappear from the output.
type serverCollector struct{ d *Dataplane }

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- serverStateDesc
	ch <- serverUpDesc
	ch <- serverActiveDesc
	ch <- serverWeightDesc
	ch <- serverRTDesc
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.d.snapshot().backends {
		for _, s := range b.servers {
			st := s.State()
			for _, name := range []ServerState{Enabled, Drain, Disabled} {
				v := 0.0
				if st == name {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(serverStateDesc, prometheus.GaugeValue, v, b.cfg.Name, s.Name, name.String())
			}
			up := 0.0
			if s.Up() {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(serverUpDesc, prometheus.GaugeValue, up, b.cfg.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(serverActiveDesc, prometheus.GaugeValue, float64(s.Active()), b.cfg.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(serverWeightDesc, prometheus.GaugeValue, s.EffectiveWeight(), b.cfg.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(serverRTDesc, prometheus.GaugeValue, s.ResponseTime().Seconds(), b.cfg.Name, s.Name)
		}
	}
}
