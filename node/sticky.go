package node

// The sticky-table endpoints of the admin API: list and delete entries (lbctl sticky),
// and export and import them in batches, shaped for the cluster's replication.
//
//	GET    /v1/sticky/{backend}                     list, sorted by key (?server=S filters)
//	DELETE /v1/sticky/{backend}?key=K | ?server=S   delete (unix socket only)
//	GET    /v1/sticky/{backend}/export?since=N&max=M local changes after mark N
//	POST   /v1/sticky/{backend}/import              apply entries from elsewhere (unix socket only)

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"lbd/dataplane"
	"lbd/dataplane/sticky"
	"lbd/node/api"
)

// Export batch sizes.
const (
	defaultStickyBatch = 1000
	maxStickyBatch     = 100000
	maxStickyImport    = 64 << 20 // bytes of an import body
)

// stickyRoutes adds the sticky-table endpoints to an admin mux; changes only on the unix
// socket (full).
func (n *Node) stickyRoutes(mux *http.ServeMux, full bool) {
	list, export := n.handleStickyList, n.handleStickyExport
	if !full {
		// Sticky keys are session cookies: on TCP, only behind the bearer token.
		list, export = needsToken(list), needsToken(export)
	}
	mux.HandleFunc("GET /v1/sticky/{backend}", list)
	mux.HandleFunc("GET /v1/sticky/{backend}/export", export)
	if full {
		mux.HandleFunc("DELETE /v1/sticky/{backend}", n.handleStickyDelete)
		mux.HandleFunc("POST /v1/sticky/{backend}/import", n.handleStickyImport)
	}
}

// stickyTable finds the table of the request's backend, or answers the error.
func (n *Node) stickyTable(w http.ResponseWriter, r *http.Request) *sticky.Table {
	t, err := n.dp.Sticky(r.PathValue("backend"))
	switch {
	case errors.Is(err, dataplane.ErrNoBackend):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
	}
	return t
}

func (n *Node) handleStickyList(w http.ResponseWriter, r *http.Request) {
	t := n.stickyTable(w, r)
	if t == nil {
		return
	}
	server := r.URL.Query().Get("server")
	out := api.StickyListResponse{Backend: r.PathValue("backend"), Entries: []api.StickyListEntry{}}
	for _, e := range t.Entries() {
		if server == "" || e.Server == server {
			out.Entries = append(out.Entries, api.StickyListEntry{Key: e.Key, Server: e.Server, Expires: time.Unix(0, e.Expires).UTC()})
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
		writeError(w, http.StatusBadRequest, "give either key or server")
		return
	}
	if key != "" {
		if !t.Delete(key) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("backend %q has no sticky entry for key %q", backend, key))
			return
		}
		n.log.Info("sticky entry deleted", "backend", backend, "key", key)
		writeJSON(w, http.StatusOK, api.StickyDeleteResponse{Deleted: 1})
		return
	}
	deleted := t.DeleteServer(server)
	if deleted == 0 && !n.hasServer(backend, server) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("backend %q has no server named %q", backend, server))
		return
	}
	n.log.Info("sticky entries deleted", "backend", backend, "server", server, "deleted", deleted)
	writeJSON(w, http.StatusOK, api.StickyDeleteResponse{Deleted: deleted})
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
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since must be a change number, not %q", v))
			return
		}
	}
	max := defaultStickyBatch
	if v := q.Get("max"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || m > maxStickyBatch {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("max must be 1 to %d, not %q", maxStickyBatch, v))
			return
		}
		max = m
	}
	t := n.stickyTable(w, r)
	if t == nil {
		return
	}
	entries, next := t.Changes(since, max)
	writeJSON(w, http.StatusOK, api.StickyExport{Entries: apiStickyEntries(entries), Next: next})
}

func (n *Node) handleStickyImport(w http.ResponseWriter, r *http.Request) {
	t := n.stickyTable(w, r)
	if t == nil {
		return
	}
	var in api.StickyImport
	dec := json.NewDecoder(io.LimitReader(r.Body, maxStickyImport))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "bad import body: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, api.StickyImportResponse{Imported: t.Import(stickyEntries(in.Entries))})
}
