// Package dataplane is the proxy of an lbd node: the part of lbd that replaces HAProxy.
// It listens on the frontends of a Config, and carries TCP connections, UDP datagrams and
// HTTP requests to the servers of backends, which it balances, health-checks, limits and
// keeps clients stuck to. It knows nothing of VRRP or of the cluster: lbd/node builds a
// Dataplane from the file, applies new configs to it (Apply: a reload without loss) and
// reads its health and status.
//
// # A config generation
//
// Apply (dataplane.go) validates a Config (config.go) and builds a new generation from
// it: frontends with their routes, backends with their servers, balancers, health
// checkers, queues, limits and persistence. Servers, their health and their run-time
// overrides (control.go) carry over from the generation before when the backend keeps
// them; listeners carry over when the address stays. The new generation is swapped in
// atomically; connections in flight finish on the generation they started on.
//
// # The life of an HTTP request
//
//  1. accept.go: the frontend's accept loop takes the connection (max_conn), reads a
//     PROXY protocol header from trusted sources (proxyproto.go, parsed by
//     internal/proxyproto).
//  2. An engine takes it. Plain HTTP/1.1 goes to the loop engine (httploop_linux.go),
//     which serves it on the Dataplane's epoll event loops (loops_linux.go, on
//     internal/evloop), reading heads and bodies with internal/h1's scanners. TLS
//     frontends (tls.go, tls_certs.go: handshake, SNI certificates, OCSP), HTTP/2
//     (http2.go behind the frame inspector http2_inspect.go), h2c, and frontends with
//     `engine: fasthttp` go to the fasthttp engine (http.go). The loop hands a
//     connection over to fasthttp at a request boundary, replaying the bytes it read,
//     for what it does not serve (HTTP/1.0, Upgrade, large bodies, TLS to servers, a
//     malformed request, ...); each hand-over has a named reason and is counted
//     (http_common.go: handover, lbd_http_engine_handover_total).
//  3. http_common.go, the contract of both engines: the route picks the backend
//     (host, path prefix, header), the rate limit decides (ratelimit.go: 429, a delay or
//     go on), and the request is rewritten for the server (X-Forwarded-*, hop-by-hop
//     headers).
//  4. persist.go and persist_cookie.go: a persistence cookie or a sticky-table entry
//     (package sticky) may name the server; otherwise the backend's balancer (package
//     balance, over Server in server.go and its effective weight in slowstart.go)
//     picks one. A server at maxconn sends the request to the backend's queue
//     (queue.go).
//  5. The server connection: a pooled keep-alive connection (http_transport.go's pools
//     for the fasthttp engine; the loop keeps its own per loop), with retries on another
//     server after a connect failure (http_common.go: classify says what a failure was).
//  6. The answer is fixed up (http_common.go: fixResponse; persistence cookies set) and
//     written to the client; errors become short 502/503/504 answers (writeAnswer), and
//     passive health (health_passive.go) and the metrics (metrics.go) count the outcome.
//
// # The life of a TCP connection
//
// accept.go takes it; tcp.go reads PROXY protocol and, with sni routes, the TLS
// ClientHello (sni.go, parsed by internal/tlshello) without terminating TLS; picks a
// server (persistence, balance, queue as above), connects with retries and sends a
// PROXY header when the backend asks for one; then tcploop_linux.go moves the bytes on
// the event loops (splice for bulk, half-close, idle timeout). Where a socket cannot go to
// a loop, tcpPipe in tcp.go does it with goroutines.
//
// UDP (udp.go): datagrams forwarded per client address to a server picked once per
// session; sessions expire when idle.
//
// # Health
//
// health.go runs the state machine of each server (rise/fall, fast interval, jitter) on
// the probes of health_check.go (tcp, http, https, tls); health_passive.go counts
// failures on real traffic (max_fails/fail_timeout); agent.go applies HAProxy-style
// agent replies (weight, drain, up); slowstart.go ramps a recovered server's weight.
//
// # Files
//
//	dataplane.go       Dataplane, Options, Apply and generations, Close
//	config.go          Config and its validation (every error names its field)
//	accept.go          the stream frontends' accept loop
//	http.go            the fasthttp engine
//	http_common.go     what both HTTP engines share: routing, rewrite, fix-up,
//	                   classification, counting, hand-overs, replayConn
//	http_transport.go  server connection pools of the fasthttp engine
//	http2.go           HTTP/2 through net/http; http2_inspect.go its frame inspector
//	httploop_linux.go  the loop engine
//	loops_linux.go     the Dataplane's event loops and their per-loop state
//	tcp.go             tcp mode up to the connected server; tcploop_linux.go after it
//	udp.go             udp mode
//	tls.go, tls_certs.go  TLS termination, certificates, OCSP, reloads
//	sni.go             SNI routing of tcp frontends
//	proxyproto.go      PROXY protocol on sockets (accept and send)
//	persist.go, persist_cookie.go  session persistence (sticky tables, cookies)
//	ratelimit.go       rate limits (nginx limit_req)
//	queue.go           server maxconn and the backend queue
//	server.go, slowstart.go  Server, its state and effective weight
//	health.go, health_check.go, health_passive.go, agent.go  health
//	control.go         run-time overrides (drain, enable, disable, weight)
//	status.go          Status, the admin API's view
//	metrics.go         Prometheus collectors
//	*_other.go         non-Linux fallbacks (no event loops)
//
// Sub-packages, which import nothing of this package: balance (the algorithms), sticky
// (the sticky table, its change feed and import), internal/evloop (the epoll loop and
// its deadline heap), internal/h1 (HTTP/1.1 scanners and header helpers),
// internal/proxyproto (PROXY protocol codec), internal/tlshello (ClientHello parser).
// docs/design-http-loop.md says why there are two HTTP engines.
package dataplane
