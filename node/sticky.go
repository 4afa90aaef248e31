package node

// The sticky-table endpoints of the admin API: list and delete entries (lbctl sticky),
// and export and import them in batches, shaped for the cluster's replication.
//
//	GET    /v1/sticky/{backend}                     list, sorted by key (?server=S filters)
//	DELETE /v1/sticky/{backend}?key=K | ?server=S   delete (unix socket only)
//	GET    /v1/sticky/{backend}/export?since=N&max=M local changes after mark N
//	POST   /v1/sticky/{backend}/import              apply entries from elsewhere (unix socket only)

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"lbd/dataplane"
)

// StickyListEntry is one entry of GET /v1/sticky/{backend}.
type StickyListEntry struct {
	Key     string    `json:"key"`
	Server  string    `json:"server"`
	Expires time.Time `json:"expires"`
}

// StickyListResponse is the answer of GET /v1/sticky/{backend}.
type StickyListResponse struct {
	Backend string            `json:"backend"`
	Entries []StickyListEntry `json:"entries"`
}

// StickyDeleteResponse is the answer of DELETE /v1/sticky/{backend}.
type StickyDeleteResponse struct {
	Deleted int `json:"deleted"`
}

// StickyExport is the answer of GET /v1/sticky/{backend}/export: the entries changed on
// this node after the mark asked for, and the mark to ask with next. Expires is in
// nanoseconds since the Unix epoch; Server "" is a deletion.
type StickyExport struct {
	Entries []dataplane.StickyEntry `json:"entries"`
	Next    uint64                  `json:"next"`
}

// StickyImport is the body of POST /v1/sticky/{backend}/import.
type StickyImport struct {
	Entries []dataplane.StickyEntry `json:"entries"`
}

// StickyImportResponse is the answer of POST /v1/sticky/{backend}/import.
type StickyImportResponse struct {
	Imported int `json:"imported"`
}

// Export batch sizes.
const (
	defaultStickyBatch = 1000
	maxStickyBatch     = 100000
	maxStickyImport    = 64 << 20 // bytes of an import body
)

// stickyRoutes adds the sticky-table endpoints to an admin mux; changes only on the unix
// socket (full).
func (n *Node) stickyRoutes(mux *http.ServeMux, full bool) {
	mux.HandleFunc("GET /v1/sticky/{backend}", n.handleStickyList)
	mux.HandleFunc("GET /v1/sticky/{backend}/export", n.handleStickyExport)
	if full {
		mux.HandleFunc("DELETE /v1/sticky/{backend}", n.handleStickyDelete)
		mux.HandleFunc("POST /v1/sticky/{backend}/import", n.handleStickyImport)
	}
}

type stickyError struct {
	Error string `json:"error"`
}

// stickyTable finds the table of the request's backend, or answers the error.
func (n *Node) stickyTable(w http.ResponseWriter, r *http.Request) *dataplane.StickyTable {
	t, err := n.dp.Sticky(r.PathValue("backend"))
	switch {
	case errors.Is(err, dataplane.ErrNoBackend):
		writeJSON(w, http.StatusNotFound, stickyError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusConflict, stickyError{err.Error()})
	}
	return t
}

func (n *Node) handleStickyList(w http.ResponseWriter, r *http.Request) {
	t := n.stickyTable(w, r)
	if t == nil {
		return
	}
	server := r.URL.Query().Get("server")
	out := StickyListResponse{Backend: r.PathValue("backend"), Entries: []StickyListEntry{}}
	for _, e := range t.Entries() {
		if server == "" || e.Server == server {
			out.Entries = append(out.Entries, StickyListEntry{Key: e.Key, Server: e.Server, Expires: time.Unix(0, e.Expires).UTC()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleStickyDelete(w http.ResponseWriter, r *http.Request) {
	t := n.stickyTable(w, r)
	if t == nil {
		return
	}
	backend := r.PathValue("backend")
	q := r.URL.Query()
	key, server := q.Get("key"), q.Get("server")
	if (key == "") == (server == "") {
		writeJSON(w, http.StatusBadRequest, stickyError{"give either key or server"})
		return
	}
	if key != "" {
		if !t.Delete(key) {
			writeJSON(w, http.StatusNotFound, stickyError{fmt.Sprintf("backend %q has no sticky entry for key %q", backend, key)})
			return
		}
		n.log.Info("sticky entry deleted", "backend", backend, "key", key)
		writeJSON(w, http.StatusOK, StickyDeleteResponse{Deleted: 1})
		return
	}
	deleted := t.DeleteServer(server)
	if deleted == 0 && !n.hasServer(backend, server) {
		writeJSON(w, http.StatusNotFound, stickyError{fmt.Sprintf("backend %q has no server named %q", backend, server)})
		return
	}
	n.log.Info("sticky entries deleted", "backend", backend, "server", server, "deleted", deleted)
	writeJSON(w, http.StatusOK, StickyDeleteResponse{Deleted: deleted})
}

func (n *Node) hasServer(backend, server string) bool {
	for _, b := range n.dp.Status().Backends {
		if b.Name != backend {
			continue
		}
		for _, s := range b.Servers {
			if s.Name == server {
				return true
			}
		}
	}
	return false
}

func (n *Node) handleStickyExport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since uint64
	if v := q.Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeJSON(w, http.StatusBadRequest, stickyError{fmt.Sprintf("since must be a change number, not %q", v)})
			return
		}
	}
	max := defaultStickyBatch
	if v := q.Get("max"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || m > maxStickyBatch {
			writeJSON(w, http.StatusBadRequest, stickyError{fmt.Sprintf("max must be 1 to %d, not %q", maxStickyBatch, v)})
			return
		}
		max = m
	}
	t := n.stickyTable(w, r)
	if t == nil {
		return
	}
	entries, next := t.Changes(since, max)
	if entries == nil {
		entries = []dataplane.StickyEntry{}
	}
	writeJSON(w, http.StatusOK, StickyExport{Entries: entries, Next: next})
}

func (n *Node) handleStickyImport(w http.ResponseWriter, r *http.Request) {
	t := n.stickyTable(w, r)
	if t == nil {
		return
	}
	var in StickyImport
	dec := json.NewDecoder(io.LimitReader(r.Body, maxStickyImport))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, stickyError{"bad import body: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, StickyImportResponse{Imported: t.Import(in.Entries)})
}

// StickyList returns the entries of backend's sticky table.
func (c *Client) StickyList(ctx context.Context, backend string) (*StickyListResponse, error) {
	var out StickyListResponse
	if err := c.stickyDo(ctx, http.MethodGet, "/v1/sticky/"+url.PathEscape(backend), nil, &out); err != nil {
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
	if err := c.stickyDo(ctx, http.MethodDelete, "/v1/sticky/"+url.PathEscape(backend)+"?"+q.Encode(), nil, &out); err != nil {
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
	if err := c.stickyDo(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StickyImport applies entries to backend's sticky table, as from another node.
func (c *Client) StickyImport(ctx context.Context, backend string, entries []dataplane.StickyEntry) (*StickyImportResponse, error) {
	var out StickyImportResponse
	if err := c.stickyDo(ctx, http.MethodPost, "/v1/sticky/"+url.PathEscape(backend)+"/import", StickyImport{Entries: entries}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// stickyDo sends a request with an optional JSON body; an answer other than 200 comes
// back as an error carrying the API's message.
func (c *Client) stickyDo(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("admin api: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e stickyError
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		if resp.StatusCode == http.StatusMethodNotAllowed {
			return fmt.Errorf("admin api: %s %s: %s (changes need the unix socket)", method, path, resp.Status)
		}
		return fmt.Errorf("admin api: %s %s: %s", method, path, resp.Status)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin api: bad answer: %w", err)
	}
	return nil
}
