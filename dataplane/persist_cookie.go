package dataplane

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"lbd/dataplane/internal/h1"
)

// Cookie persistence works as HAProxy's "cookie NAME insert indirect nocache": lbd
// inserts a cookie naming the server into the response, takes it out of the requests
// before they go to the server, and marks the responses that set it as not to be cached
// with their Set-Cookie.
//
// The value is stateless: base64url of the first 12 bytes (96 bits) of
// HMAC-SHA256(key, backend name, server name), where key is persistence.cookie.key,
// shared by every node. So a cookie reveals no address, survives restarts and reloads,
// is understood by every node, and cannot be forged without the key; a server's value
// is found again by a map lookup. Without a key, lbd uses a random one made when it
// starts: cookies then lapse at every restart and are not understood by other nodes.

// cookieMACLen is how many bytes of the HMAC a cookie value carries.
const cookieMACLen = 12

// randomCookieKey is the key of cookie persistence without persistence.cookie.key: made
// once per process.
var randomCookieKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails (crypto/rand panics rather)
	return k
})

// cookieValue returns the value of the persistence cookie that sends a client of backend
// to server.
func cookieValue(key []byte, backend, server string) string {
	m := hmac.New(sha256.New, key)
	var n [4]byte
	m.Write([]byte("lbd persistence cookie v1\x00"))
	binary.BigEndian.PutUint32(n[:], uint32(len(backend)))
	m.Write(n[:])
	m.Write([]byte(backend))
	binary.BigEndian.PutUint32(n[:], uint32(len(server)))
	m.Write(n[:])
	m.Write([]byte(server))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:cookieMACLen])
}

// cookieCodec maps one backend's servers to and from cookie values.
type cookieCodec struct {
	name    string
	byValue map[string]*Server
	// setCookie is the Set-Cookie header value for each server.
	setCookie map[*Server]string
}

func newCookieCodec(cfg PersistenceCookie, key []byte, backend string, servers []*Server) *cookieCodec {
	c := &cookieCodec{name: cfg.Name, byValue: map[string]*Server{}, setCookie: map[*Server]string{}}
	for _, s := range servers {
		v := cookieValue(key, backend, s.Name)
		c.byValue[v] = s
		c.setCookie[s] = renderSetCookie(cfg, v)
	}
	return c
}

// decode returns the server a cookie value names, or nil for a value that names no
// server of the backend (forged, of another backend or key, or of a removed server).
func (c *cookieCodec) decode(v []byte) *Server { return c.byValue[string(v)] }

// renderSetCookie returns the Set-Cookie value carrying v with cfg's attributes.
func renderSetCookie(cfg PersistenceCookie, v string) string {
	var b strings.Builder
	b.WriteString(cfg.Name)
	b.WriteByte('=')
	b.WriteString(v)
	if cfg.Path != "" {
		b.WriteString("; Path=")
		b.WriteString(cfg.Path)
	}
	if cfg.Domain != "" {
		b.WriteString("; Domain=")
		b.WriteString(cfg.Domain)
	}
	if s := int64(cfg.MaxAge.Seconds()); s > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(s, 10))
	}
	if cfg.Secure {
		b.WriteString("; Secure")
	}
	if cfg.HTTPOnly == nil || *cfg.HTTPOnly {
		b.WriteString("; HttpOnly")
	}
	switch cfg.SameSite {
	case SameSiteStrict:
		b.WriteString("; SameSite=Strict")
	case SameSiteNone:
		b.WriteString("; SameSite=None")
	default:
		b.WriteString("; SameSite=Lax")
	}
	return b.String()
}

// chooseCookie reads and removes the persistence cookie of req, and returns the server it
// names if that server may take the request.
func (p *persistence) chooseCookie(req *fasthttp.Request, ps *persistScratch) *Server {
	h := &req.Header
	v := h.Cookie(p.cookie.name)
	if v == nil {
		ps.result = persistMiss
		return nil
	}
	s := p.cookie.decode(v)
	h.DelCookie(p.cookie.name) // indirect: the server never sees it
	switch {
	case s == nil:
		ps.result = persistInvalid
		return nil
	case !usable(s):
		ps.result = persistRedispatch
		return nil
	}
	ps.result, ps.chosen = persistHit, s
	return s
}

var (
	hdrSetCookie          = "Set-Cookie"
	hdrCacheControl       = "Cache-Control"
	noCacheSetCookie      = `no-cache="Set-Cookie"`
	commaNoCacheSetCookie = `, no-cache="Set-Cookie"`
)

// recordCookie sets the persistence cookie on resp when s, which answered, is not the
// server the request's cookie named. A cookie of that name the server set is removed
// either way: lbd owns it.
func (p *persistence) recordCookie(h *fasthttp.ResponseHeader, s *Server, ps *persistScratch) {
	h.DelCookie(p.cookie.name)
	if ps.chosen == s {
		return
	}
	line, ok := p.cookie.setCookie[s]
	if !ok {
		return
	}
	h.Add(hdrSetCookie, line)
	// nocache: a shared cache may keep the response, but not hand this Set-Cookie to
	// other clients.
	var cc []byte
	var keys []string
	for k, v := range h.All() {
		if h1.EqualFold(k, hdrCacheControl) {
			if len(cc) > 0 {
				cc = append(cc, ", "...)
			}
			cc = append(cc, v...)
			keys = append(keys, string(k))
		}
	}
	if cc == nil {
		h.Set(hdrCacheControl, noCacheSetCookie)
		return
	}
	for _, k := range keys {
		h.Del(k)
	}
	h.SetBytesV(hdrCacheControl, append(cc, commaNoCacheSetCookie...))
}
