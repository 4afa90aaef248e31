package node

// The sticky-table endpoints of the admin API: list and delete entries (lbctl sticky),
// and export and import them in batches, shaped for the cluster's replication.
//
//	GET    /v1/sticky/{backend}                     list, sorted by key (?server=S filters)
//	DELETE /v1/sticky/{backend}?key=K | ?server=S   delete (unix socket only)
//	GET    /v1/sticky/{backend}/export?since=N&max=M local changes after mark N
//	POST   /v1/sticky/{backend}/import              apply entries from elsewhere (unix socket only)

import (
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

// stickyTable finds the table of the request's backend, or answers the error.
func (n *Node) stickyTable(w http.ResponseWriter, r *http.Request) *dataplane.StickyTable {
	t, err := n.dp.Sticky(r.PathValue("backend"))
	switch {
	case errors.Is(err, dataplane.ErrNoBackend):
		writeJSON(w, http.StatusNotFound, ErrorResponse{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusConflict, ErrorResponse{err.Error()})
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
		writeJSON(w, http.StatusBadRequest, ErrorResponse{"give either key or server"})
		return
	}
	if key != "" {
		if !t.Delete(key) {
			writeJSON(w, http.StatusNotFound, ErrorResponse{fmt.Sprintf("backend %q has no sticky entry for key %q", backend, key)})
			return
		}
		n.log.Info("sticky entry deleted", "backend", backend, "key", key)
		writeJSON(w, http.StatusOK, StickyDeleteResponse{Deleted: 1})
		return
	}
	deleted := t.DeleteServer(server)
	if deleted == 0 && !n.hasServer(backend, server) {
		writeJSON(w, http.StatusNotFound, ErrorResponse{fmt.Sprintf("backend %q has no server named %q", backend, server)})
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
			writeJSON(w, http.StatusBadRequest, ErrorResponse{fmt.Sprintf("since must be a change number, not %q", v)})
			return
		}
	}
	max := defaultStickyBatch
	if v := q.Get("max"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || m > maxStickyBatch {
			writeJSON(w, http.StatusBadRequest, ErrorResponse{fmt.Sprintf("max must be 1 to %d, not %q", maxStickyBatch, v)})
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
		writeJSON(w, http.StatusBadRequest, ErrorResponse{"bad import body: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, StickyImportResponse{Imported: t.Import(in.Entries)})
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
func (c *Client) StickyImport(ctx context.Context, backend string, entries []dataplane.StickyEntry) (*StickyImportResponse, error) {
	var out StickyImportResponse
	if err := c.call(ctx, http.MethodPost, "/v1/sticky/"+url.PathEscape(backend)+"/import", StickyImport{Entries: entries}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
