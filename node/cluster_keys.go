package node

// Gossip key rotation across the cluster. The leader drives it through a replicated
// file (keyRotationFile, in raft like the config, so every node gets it, a restarted
// one too): first every node installs the new key (it then reads both), then every
// node encrypts with it, then every node drops the old one and keeps the new one as the
// key it starts with. Each node's cluster loop brings its keyring to the file's phase
// (reconcileKeys); the leader waits keyPhaseWait between phases for the others to
// follow. A node that lags a phase misses gossip for that moment and catches up from
// raft, which does not depend on gossip.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"lbd/cluster"
	"lbd/node/api"
)

// keyRotationFile is the replicated file of the rotation in progress or last done.
const keyRotationFile = "lbd-gossip-rotation.json"

// keyPhaseWait is how long the leader gives the other nodes to follow each phase:
// several cluster loop periods past a raft commit. A variable for tests.
var keyPhaseWait = 2 * time.Second

// The phases of a rotation.
const (
	rotationInstall = "install" // every node installs Key
	rotationUse     = "use"     // every node encrypts with Key
	rotationDone    = "done"    // every node removes Old
)

type keyRotation struct {
	Key   string `json:"key"`
	Old   string `json:"old"`
	Phase string `json:"phase"`
}

func keyFingerprint(b64 string) string {
	k, _ := base64.StdEncoding.DecodeString(b64)
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:8])
}

// reconcileKeys brings this node's keyring to the phase of the replicated rotation.
func (n *Node) reconcileKeys(agent *cluster.Cluster, cfg *Config) error {
	b, ok := agent.File(keyRotationFile)
	if !ok {
		return nil
	}
	var r keyRotation
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("gossip key rotation: %w", err)
	}
	have := map[string]bool{} // fingerprint → primary
	for _, k := range agent.Keys() {
		have[k.Fingerprint] = k.Primary
	}
	fp, oldFP := keyFingerprint(r.Key), keyFingerprint(r.Old)
	if _, ok := have[fp]; !ok {
		if err := agent.InstallKey(r.Key); err != nil {
			return err
		}
		n.log.Info("gossip key installed", "fingerprint", fp)
	}
	if r.Phase == rotationInstall {
		return nil
	}
	if !have[fp] {
		if err := agent.UseKey(r.Key); err != nil {
			return err
		}
		n.log.Info("gossip key in use", "fingerprint", fp)
	}
	if r.Phase != rotationDone {
		return nil
	}
	if _, ok := have[oldFP]; ok && r.Old != r.Key {
		if err := agent.RemoveKey(r.Old); err != nil {
			return err
		}
		n.log.Info("old gossip key removed", "fingerprint", oldFP)
	}
	if cur, err := os.ReadFile(keyPath(cfg)); err == nil && strings.TrimSpace(string(cur)) != r.Key {
		return writeKey(cfg, r.Key)
	}
	return nil
}

// rotateKeys runs a rotation from the leader; it returns the new key's fingerprint.
func (n *Node) rotateKeys(ctx context.Context, agent *cluster.Cluster, cfg *Config) (string, error) {
	old := ""
	if b, ok := agent.File(keyRotationFile); ok {
		var r keyRotation
		if err := json.Unmarshal(b, &r); err != nil {
			return "", fmt.Errorf("gossip key rotation: %w", err)
		}
		// After a finished rotation every node holds its key only. One that did not
		// finish (its leader failed) is replaced: its old key is still the one every
		// node has.
		old = r.Key
		if r.Phase != rotationDone {
			old = r.Old
		}
	} else {
		b, err := os.ReadFile(keyPath(cfg))
		if err != nil {
			return "", err
		}
		old = strings.TrimSpace(string(b))
	}
	r := keyRotation{Key: newGossipKey(), Old: old}
	for i, phase := range []string{rotationInstall, rotationUse, rotationDone} {
		if i > 0 {
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("gossip key rotation stopped before %s: %w", phase, ctx.Err())
			case <-time.After(keyPhaseWait):
			}
		}
		r.Phase = phase
		b, _ := json.Marshal(r)
		if err := agent.PutFiles(ctx, cluster.FilesChange{Put: map[string][]byte{keyRotationFile: b}}); err != nil {
			return "", fmt.Errorf("gossip key rotation (%s): %w", phase, err)
		}
		if err := n.reconcileKeys(agent, cfg); err != nil {
			return "", err
		}
	}
	return keyFingerprint(r.Key), nil
}

func (n *Node) handleKeyRotate(w http.ResponseWriter, r *http.Request) {
	a := n.needAgent(w)
	if a == nil {
		return
	}
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	if st := a.Status(); st.State != "leader" {
		writeClusterError(w, &cluster.NotLeaderError{LeaderID: st.LeaderID, LeaderAddr: st.LeaderAddr})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 4*keyPhaseWait+joinTimeout)
	defer cancel()
	fp, err := n.rotateKeys(ctx, a, cfg)
	if err != nil {
		var nl *cluster.NotLeaderError
		var q *cluster.QuorumError
		if errors.As(err, &nl) || errors.As(err, &q) {
			writeClusterError(w, err)
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	n.log.Info("gossip key rotated", "fingerprint", fp)
	out := api.ClusterKeyRotateResponse{Fingerprint: fp, Keys: []string{}}
	for _, k := range a.Keys() {
		out.Keys = append(out.Keys, k.Fingerprint)
	}
	writeJSON(w, http.StatusOK, out)
}
