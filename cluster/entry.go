package cluster

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// A raft entry is one type byte followed by a JSON payload. The type byte lets the
// state machine refuse, loudly, an entry written by a newer lbd that it does not know
// (fsm.go), instead of skipping it or misreading it; the JSON payload lets a newer
// lbd add fields that an older one ignores.
type entryType byte

const (
	// entryConfigPut commits a new version of the cluster-wide config document.
	entryConfigPut entryType = 1
	// entryFilesPut stores and deletes replicated files (certificates, keys).
	entryFilesPut entryType = 2
	// entryMember admits a node (its certificate came from the join exchange, or it
	// bootstrapped the cluster) or marks it removed (admission.go).
	entryMember entryType = 3
)

func (t entryType) String() string {
	switch t {
	case entryConfigPut:
		return "config-put"
	case entryFilesPut:
		return "files-put"
	case entryMember:
		return "member"
	}
	return fmt.Sprintf("type-%d", byte(t))
}

// configPutEntry is the payload of entryConfigPut. The state machine gives it the next
// version number when it commits.
type configPutEntry struct {
	Document []byte    `json:"document"`
	Author   string    `json:"author,omitempty"`
	Time     time.Time `json:"time"`
	Comment  string    `json:"comment,omitempty"`
	// BaseVersion, if not nil, must still be the current version (0: none yet) when
	// the entry is applied, or the entry is refused with ErrVersionConflict.
	BaseVersion *uint64 `json:"base_version,omitempty"`
}

// filesPutEntry is the payload of entryFilesPut: files to write (whole) and files to
// delete, applied together.
type filesPutEntry struct {
	Put    map[string][]byte `json:"put,omitempty"`
	Delete []string          `json:"delete,omitempty"`
}

// memberEntry is the payload of entryMember.
type memberEntry struct {
	// Op is memberAdmit or memberRemove.
	Op string `json:"op"`
	// Node is the admitted node's record (for a removal, only its Name counts).
	Node AdmittedNode `json:"node"`
}

const (
	memberAdmit  = "admit"
	memberRemove = "remove"
)

func encodeEntry(t entryType, payload any) ([]byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encoding %v entry: %w", t, err)
	}
	return append([]byte{byte(t)}, b...), nil
}

// Limits checked before an entry is proposed. They are not checked by the state
// machine, so that a later version may change them without the nodes disagreeing on
// what an entry does.
const (
	maxDocumentSize = 4 << 20
	maxFilesSize    = 16 << 20
	maxFileNameLen  = 128
)

// fileNameRE is what a replicated file may be called: one path element, no hidden
// files, so that it can never name anything outside the files directory.
var fileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkFileName(name string) error {
	if !fileNameRE.MatchString(name) {
		return fmt.Errorf("file name %q must be 1 to %d letters, digits, '.', '-' or '_', starting with a letter or digit", name, maxFileNameLen)
	}
	return nil
}
