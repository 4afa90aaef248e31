package dataplane

// The probes of active health checks: tcp, http, https and tls.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// probe performs one check of a server within ctx's deadline; nil means it passed.
type probe func(ctx context.Context) error

// checkFailure is a failed check whose reason is already worded, such as
// "http status 503".
type checkFailure string

func (e checkFailure) Error() string { return string(e) }

// maxCheckBody bounds the body an http check reads to look for expect_body.
const maxCheckBody = 64 << 10

// newProbe returns the probe hc describes for the server at addr.
func newProbe(hc *HealthCheck, addr string) probe {
	target := checkAddr(addr, hc.Port)
	ranges, _ := parseStatusRanges(hc.HTTP.ExpectStatus)
	host := hc.HTTP.Host
	if host == "" {
		host = addr
	}
	switch hc.Type {
	case CheckHTTP, CheckHTTPS:
		useTLS := hc.Type == CheckHTTPS
		return func(ctx context.Context) error {
			return httpCheck(ctx, target, useTLS, host, &hc.HTTP, ranges)
		}
	case CheckTLS:
		return func(ctx context.Context) error {
			c, err := dialCheck(ctx, target, true, serverName(host))
			if err == nil {
				c.Close()
			}
			return err
		}
	}
	return func(ctx context.Context) error {
		c, err := dialCheck(ctx, target, false, "")
		if err == nil {
			c.Close()
		}
		return err
	}
}

// checkAddr returns addr with its port replaced by port, unless port is 0.
func checkAddr(addr string, port int) string {
	if port == 0 {
		return addr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// serverName is the TLS server name for host, which may carry a port.
func serverName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// dialCheck connects to addr, with a TLS handshake (certificate not verified: the check
// asks whether the server answers, not whom to trust) when useTLS.
func dialCheck(ctx context.Context, addr string, useTLS bool, sni string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if !useTLS {
		return c, nil
	}
	tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// httpCheck sends one request and checks the answer's status and body.
func httpCheck(ctx context.Context, addr string, useTLS bool, host string, hc *HTTPCheck, ranges []statusRange) error {
	c, err := dialCheck(ctx, addr, useTLS, serverName(host))
	if err != nil {
		return err
	}
	defer c.Close()
	req := hc.Method + " " + hc.Path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUser-Agent: lbd-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: hc.Method})
	if err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return checkFailure("connection closed without an answer")
		}
		return err
	}
	defer resp.Body.Close()
	if !statusIn(resp.StatusCode, ranges) {
		return checkFailure("http status " + strconv.Itoa(resp.StatusCode))
	}
	if hc.ExpectBody != "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckBody))
		if err != nil && !strings.Contains(string(body), hc.ExpectBody) {
			return err
		}
		if !strings.Contains(string(body), hc.ExpectBody) {
			return checkFailure(fmt.Sprintf("body does not contain %q", hc.ExpectBody))
		}
	}
	return nil
}

// checkReason words a failed check for logs and lbctl: "connect: connection refused",
// "timeout after 1s", "http status 503".
func checkReason(err error, timeout time.Duration) string {
	var cf checkFailure
	switch {
	case errors.As(err, &cf):
		return string(cf)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		return "timeout after " + timeout.String()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connect: connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "connect: no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "connect: network is unreachable"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return "connect: " + oe.Err.Error()
	}
	return err.Error()
}

// statusRange is an inclusive range of HTTP status codes.
type statusRange struct{ lo, hi int }

// parseStatusRanges reads "200-399", "200,204" or "200, 300-399".
func parseStatusRanges(s string) ([]statusRange, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("must list status codes or ranges such as \"200-399\", not \"\"")
	}
	var out []statusRange
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		switch {
		case err1 != nil || err2 != nil:
			return nil, fmt.Errorf("%q is not a status code or a range such as 200-399", part)
		case a < 100 || b > 599:
			return nil, fmt.Errorf("%q: status codes are 100-599", part)
		case a > b:
			return nil, fmt.Errorf("%q: the range is empty", part)
		}
		out = append(out, statusRange{a, b})
	}
	return out, nil
}

func statusIn(code int, ranges []statusRange) bool {
	for _, r := range ranges {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}
