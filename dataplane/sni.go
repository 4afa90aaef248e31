package dataplane

// SNI routing of tcp frontends: lbd reads the client's TLS ClientHello from the bare
// connection (it does not terminate TLS), takes the server name from it, picks the
// backend of the first sni route that matches (else the frontend's backend), sends the
// bytes it read to the server, and splices the rest as any tcp session. The ClientHello
// is read and parsed by dataplane/internal/tlshello.

import (
	"strings"
	"time"

	"lbd/dataplane/internal/tlshello"
)

// sniRoute is a compiled sni route.
type sniRoute struct {
	name     string // lower case; for a wildcard, the suffix with its dot (".example.com")
	wildcard bool
	backend  *backend
}

// compileSNIRoutes returns the sni routes of a frontend.
func compileSNIRoutes(fc Frontend, byName map[string]*backend) []sniRoute {
	var out []sniRoute
	for _, r := range fc.Routes {
		if r.SNI == "" {
			continue
		}
		sr := sniRoute{name: strings.ToLower(r.SNI), backend: byName[r.Backend]}
		if strings.HasPrefix(sr.name, "*.") {
			sr.name, sr.wildcard = sr.name[1:], true
		}
		out = append(out, sr)
	}
	return out
}

// matchSNI returns the backend for server name sni, or nil when no route matches.
func matchSNI(routes []sniRoute, sni string) *backend {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	for _, r := range routes {
		if r.wildcard {
			if len(sni) > len(r.name) && strings.HasSuffix(sni, r.name) {
				return r.backend
			}
		} else if sni == r.name {
			return r.backend
		}
	}
	return nil
}

// routeSNI picks the backend of a tcp connection: the default one, or for a frontend
// with sni routes, by the server name of the ClientHello it reads from c. hello is what
// it read, for the server; ok is false when the connection is to be closed.
func (f *tcpFrontend) routeSNI(c *tcpConn, g *frontendGen) (b *backend, hello []byte, ok bool) {
	if len(g.sni) == 0 {
		return g.backend, nil, true
	}
	m := g.metrics.tls.passthrough
	c.client.SetReadDeadline(time.Now().Add(g.cfg.Timeouts.ClientHeader))
	hello, name, err := tlshello.Read(c.client)
	c.client.SetReadDeadline(time.Time{})
	if err != nil {
		result := "malformed"
		if isTimeout(err) {
			result = "timeout"
		}
		m.WithLabelValues(g.cfg.Name, result).Inc()
		f.d.log.Debug("no ClientHello to route by", "frontend", g.cfg.Name, "client", c.client.RemoteAddr(), "err", err)
		return nil, nil, false
	}
	g.m.bytesIn.Add(float64(len(hello)))
	if b := matchSNI(g.sni, name); b != nil {
		m.WithLabelValues(g.cfg.Name, "routed").Inc()
		return b, hello, true
	}
	m.WithLabelValues(g.cfg.Name, "default").Inc()
	return g.backend, hello, true
}
