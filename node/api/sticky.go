package api

import "time"

// StickyListEntry is one entry of GET /v1/sticky/{backend}.
type StickyListEntry struct {
	Key     string    `json:"key"`
	Server  string    `json:"server"`
	Expires time.Time `json:"expires"`
}

// StickyListResponse is the answer of GET /v1/sticky/{backend}: the entries sorted by
// key.
type StickyListResponse struct {
	Backend string            `json:"backend"`
	Entries []StickyListEntry `json:"entries"`
}

// StickyDeleteResponse is the answer of DELETE /v1/sticky/{backend}.
type StickyDeleteResponse struct {
	Deleted int `json:"deleted"`
}

// StickyEntry is one sticky-table entry as export and import carry it.
type StickyEntry struct {
	// Key is the request key, such as "192.0.2.7" or a header's value.
	Key string `json:"key"`
	// Server is the name of the server the key sticks to; "" is a deletion.
	Server string `json:"server"`
	// Expires is when the entry lapses, in nanoseconds since the Unix epoch.
	Expires int64 `json:"expires"`
}

// StickyExport is the answer of GET /v1/sticky/{backend}/export: the entries changed on
// the node after the mark asked for, and the mark to ask with next.
type StickyExport struct {
	Entries []StickyEntry `json:"entries"`
	Next    uint64        `json:"next"`
}

// StickyImport is the body of POST /v1/sticky/{backend}/import.
type StickyImport struct {
	Entries []StickyEntry `json:"entries"`
}

// StickyImportResponse is the answer of POST /v1/sticky/{backend}/import.
type StickyImportResponse struct {
	Imported int `json:"imported"`
}
