package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client talks to a node's admin API over its unix socket (or, for reads, its TCP
// listener).
type Client struct {
	target string // as given to NewClient, for messages
	base   string
	http   *http.Client
	token  string // sent as "Authorization: Bearer" when set
}

// WithToken returns a copy of c that sends token as a bearer token with every request:
// the TCP listener asks for it when the node sets node.admin.token_file.
func (c *Client) WithToken(token string) *Client {
	c2 := *c
	c2.token = token
	return &c2
}

// NewClient returns a client for the admin API at target: a unix socket path (starting
// with /) or an http:// URL.
func NewClient(target string) *Client {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		return &Client{target: target, base: strings.TrimRight(target, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", target)
	}}
	return &Client{target: target, base: "http://lbd", http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Error is a refusal from the admin API: an answer other than 200 OK. Its text is the
// API's own message, such as `backend "app" has no server named "s9"`.
type Error struct {
	// StatusCode is the answer's HTTP status, such as 404.
	StatusCode int
	// Message is the API's message; for an answer without one, the request, the status
	// and the start of the body.
	Message string
}

func (e *Error) Error() string { return e.Message }

// UnreachableError is a failure to connect to the admin API: no socket, nothing
// listening on it, or no permission to use it.
type UnreachableError struct {
	// Target is the socket path or URL the client was made for.
	Target string
	// Err is the dial error.
	Err error
}

func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, syscall.EPERM) {
		return fmt.Sprintf("cannot reach lbd at %s: permission denied (the admin socket is for root and group lbd)", e.Target)
	}
	return fmt.Sprintf("cannot reach lbd at %s: is lbd running? systemctl status lbd", e.Target)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var out StatusResponse
	if err := c.call(ctx, http.MethodGet, "/v1/status", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Reload asks the node to re-read its config file. A refused config comes back as an
// *Error listing the problems, with the answer.
func (c *Client) Reload(ctx context.Context) (*ReloadResponse, error) {
	return c.ReloadWith(ctx, ReloadRequest{})
}

// ReloadWith is Reload with options (AllowEmpty: apply a config that removes every
// frontend and every VIP).
func (c *Client) ReloadWith(ctx context.Context, req ReloadRequest) (*ReloadResponse, error) {
	const method, path = http.MethodPost, "/v1/reload"
	var in any
	if req != (ReloadRequest{}) {
		in = req
	}
	code, body, err := c.roundTrip(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	var out ReloadResponse
	if code == http.StatusUnprocessableEntity && json.Unmarshal(body, &out) == nil && len(out.Errors) > 0 {
		return &out, &Error{StatusCode: code, Message: "config refused, the old config keeps serving:\n" + strings.Join(out.Errors, "\n")}
	}
	if code != http.StatusOK {
		return nil, answerError(method, path, code, body)
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("admin api: bad answer to %s %s: %w", method, path, err)
	}
	return &out, nil
}

// Metrics returns the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	code, body, err := c.roundTrip(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", answerError(http.MethodGet, "/metrics", code, body)
	}
	return string(body), nil
}

// SetServer changes a server's state and/or weight at run time.
func (c *Client) SetServer(ctx context.Context, backend, server string, ch ServerChange) (*ServerStatus, error) {
	var out ServerStatus
	path := "/v1/backends/" + url.PathEscape(backend) + "/servers/" + url.PathEscape(server)
	if err := c.call(ctx, http.MethodPut, path, ch, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Drain drains the node: its /healthz answers 503 from now on.
func (c *Client) Drain(ctx context.Context, grace time.Duration) (*DrainStatus, error) {
	var out DrainStatus
	if err := c.call(ctx, http.MethodPost, "/v1/node/drain", DrainRequest{Grace: grace.String()}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Undrain ends a node drain.
func (c *Client) Undrain(ctx context.Context) (*DrainStatus, error) {
	var out DrainStatus
	if err := c.call(ctx, http.MethodPost, "/v1/node/undrain", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DrainStatus returns the node's drain state.
func (c *Client) DrainStatus(ctx context.Context) (*DrainStatus, error) {
	var out DrainStatus
	if err := c.call(ctx, http.MethodGet, "/v1/node/drain", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StickyList returns the entries of backend's sticky table.
func (c *Client) StickyList(ctx context.Context, backend string) (*StickyListResponse, error) {
	var out StickyListResponse
	if err := c.call(ctx, http.MethodGet, "/v1/sticky/"+url.PathEscape(backend), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StickyDelete deletes the entry of key, or every entry of server (give one of them),
// from backend's sticky table.
func (c *Client) StickyDelete(ctx context.Context, backend, key, server string) (*StickyDeleteResponse, error) {
	q := url.Values{}
	if key != "" {
		q.Set("key", key)
	}
	if server != "" {
		q.Set("server", server)
	}
	var out StickyDeleteResponse
	if err := c.call(ctx, http.MethodDelete, "/v1/sticky/"+url.PathEscape(backend)+"?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StickyExport returns up to max (0: the node's default) entries changed on the node
// after mark since, and the next mark.
func (c *Client) StickyExport(ctx context.Context, backend string, since uint64, max int) (*StickyExport, error) {
	path := "/v1/sticky/" + url.PathEscape(backend) + "/export?since=" + strconv.FormatUint(since, 10)
	if max > 0 {
		path += "&max=" + strconv.Itoa(max)
	}
	var out StickyExport
	if err := c.call(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StickyImport applies entries to backend's sticky table, as from another node.
func (c *Client) StickyImport(ctx context.Context, backend string, entries []StickyEntry) (*StickyImportResponse, error) {
	var out StickyImportResponse
	if err := c.call(ctx, http.MethodPost, "/v1/sticky/"+url.PathEscape(backend)+"/import", StickyImport{Entries: entries}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VIPs returns the node's VRRP instances.
func (c *Client) VIPs(ctx context.Context) ([]VIPStatus, error) {
	var out []VIPStatus
	if err := c.call(ctx, http.MethodGet, "/v1/vips", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// MoveVIP hands the master role of instance name (and its sync group) over to the best
// backup. It fails when this node is not the instance's master.
func (c *Client) MoveVIP(ctx context.Context, name string) (*VIPStatus, error) {
	var out VIPStatus
	if err := c.call(ctx, http.MethodPost, "/v1/vips/"+url.PathEscape(name)+"/move", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// call sends in as JSON (nil for no body) and decodes a 200 answer into out; any other
// answer comes back as an *Error carrying the API's message.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	code, body, err := c.roundTrip(ctx, method, path, in)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return answerError(method, path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin api: bad answer to %s %s: %w", method, path, err)
	}
	return nil
}

// roundTrip sends one request (in as JSON, nil for no body) and returns the answer's
// status and body. A node that cannot be reached is an *UnreachableError.
func (c *Client) roundTrip(ctx context.Context, method, path string, in any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if unreachable(err) {
			return 0, nil, &UnreachableError{Target: c.target, Err: err}
		}
		return 0, nil, fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("admin api: %s %s: reading the answer: %w", method, path, err)
	}
	return resp.StatusCode, data, nil
}

// unreachable reports whether err is a failure to connect that says no lbd listens
// there: the socket is absent, refuses, or may not be opened.
func unreachable(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return false
	}
	for _, errno := range []error{syscall.ENOENT, syscall.ECONNREFUSED, syscall.EACCES, syscall.EPERM} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// answerError turns an answer other than 200 into an *Error: the API's message when the
// body is an ErrorResponse, else the request, the status and the start of the body.
func answerError(method, path string, code int, body []byte) error {
	var e ErrorResponse
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &Error{StatusCode: code, Message: e.Error}
	}
	msg := fmt.Sprintf("admin api: %s %s: %d %s", method, path, code, http.StatusText(code))
	text := strings.TrimSpace(string(body))
	if len(text) > 512 {
		text = text[:512] + "..."
	}
	if text != "" {
		msg += ": " + text
	}
	return &Error{StatusCode: code, Message: msg}
}
