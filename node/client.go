package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client talks to a node's admin API over its unix socket (or, for reads, its TCP
// listener).
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the admin API at target: a unix socket path (starting
// with /) or an http:// URL.
func NewClient(target string) *Client {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		return &Client{base: strings.TrimRight(target, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", target)
	}}
	return &Client{base: "http://lbd", http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var out StatusResponse
	if err := c.do(ctx, http.MethodGet, "/v1/status", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Reload asks the node to re-read its config file. A refused config comes back as an
// error listing the problems.
func (c *Client) Reload(ctx context.Context) (*ReloadResponse, error) {
	var out ReloadResponse
	err := c.do(ctx, http.MethodPost, "/v1/reload", &out)
	if err != nil && len(out.Errors) > 0 {
		return &out, errors.New("config refused, the old config keeps serving:\n" + strings.Join(out.Errors, "\n"))
	}
	return &out, err
}

// Metrics returns the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("admin api: %w", err)
	}
	if jerr := json.Unmarshal(body, out); jerr != nil && resp.StatusCode == http.StatusOK {
		return fmt.Errorf("admin api: bad answer: %w", jerr)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin api: %s %s: %s", method, path, resp.Status)
	}
	return nil
}
