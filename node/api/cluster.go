package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The cluster endpoints (under /v1/cluster/ and /v1/config/). A write that needs the
// raft leader and reaches another node is answered 421 Misdirected Request naming the
// leader; one made while no majority of the voters is reachable is answered 503 with
// "no quorum: 1 of 2 voters reachable; add a witness or run lbctl cluster recover
// --force". A node in no cluster answers the cluster reads 409 Conflict.

// ClusterStatus is GET /v1/cluster/status: this node's view of the cluster.
type ClusterStatus struct {
	// Node is this node's name, and Role its role: voter or witness.
	Node string `json:"node"`
	Role string `json:"role"`
	// State is this node's raft state: leader, follower, candidate or shutdown.
	State string `json:"state"`
	// Leader and LeaderAddr name the raft leader ("" while none is known).
	Leader     string `json:"leader"`
	LeaderAddr string `json:"leader_addr"`
	// Term, CommitIndex and AppliedIndex are raft's, as this node knows them.
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// ConfigVersion is the latest committed version of the cluster-wide document this
	// node has, and AppliedVersion the one it runs (lower when it could not apply
	// the latest; ApplyError says why).
	ConfigVersion  uint64 `json:"config_version"`
	AppliedVersion uint64 `json:"applied_version"`
	ApplyError     string `json:"apply_error,omitempty"`
	// Members is every node gossip knows of, by name.
	Members []ClusterMember `json:"members"`
}

// ClusterMember is one node as gossip shows it.
type ClusterMember struct {
	Name string `json:"name"`
	// State is alive, dead or left.
	State string `json:"state"`
	// Role is voter or witness; Voter says whether raft counts the node's vote now.
	Role  string `json:"role"`
	Voter bool   `json:"voter"`
	// Leader: the node is the raft leader.
	Leader     bool   `json:"leader"`
	GossipAddr string `json:"gossip_addr"`
	RaftAddr   string `json:"raft_addr"`
	// Version is the node's lbd version; ConfigVersion the document version it runs.
	Version       string `json:"version"`
	ConfigVersion uint64 `json:"config_version"`
	DataplaneUp   bool   `json:"dataplane_up"`
	// VRRP is each VRRP instance's state on the node.
	VRRP []MemberVRRP `json:"vrrp"`
	// Backends is each backend's health as the node sees it.
	Backends []MemberBackend `json:"backends"`
}

// MemberVRRP is one VRRP instance's state on a member.
type MemberVRRP struct {
	Instance string `json:"instance"`
	State    string `json:"state"`
}

// MemberBackend counts a backend's healthy servers on a member.
type MemberBackend struct {
	Backend string `json:"backend"`
	Healthy int    `json:"healthy"`
	Total   int    `json:"total"`
}

// ClusterInitResponse is POST /v1/cluster/init.
type ClusterInitResponse struct {
	// ConfigVersion is the first version of the document, seeded from the node's file.
	ConfigVersion uint64 `json:"config_version"`
	// GossipAddr and RaftAddr are where the other nodes reach this one; joins go to
	// the raft address.
	GossipAddr string `json:"gossip_addr"`
	RaftAddr   string `json:"raft_addr"`
	// Token is a join token (it carries the cluster CA's fingerprint), good for
	// several joins until TokenExpires.
	Token        string    `json:"token"`
	TokenExpires time.Time `json:"token_expires"`
	// JoinCommand is what to run on each other node to join it.
	JoinCommand string `json:"join_command"`
}

// ClusterJoinRequest is POST /v1/cluster/join.
type ClusterJoinRequest struct {
	// Address is the raft address (host:port) of the node that made the token.
	Address string `json:"address"`
	// Token is the join token printed by init.
	Token string `json:"token"`
	// Seeds are gossip addresses of members. Default: node.cluster.seeds, else
	// Address's host at port 7946.
	Seeds []string `json:"seeds,omitempty"`
}

// ClusterRemoveRequest is POST /v1/cluster/remove.
type ClusterRemoveRequest struct {
	Node string `json:"node"`
}

// ClusterRecoverRequest is POST /v1/cluster/recover.
type ClusterRecoverRequest struct {
	// Force must be true: recovery overrides the lost majority.
	Force bool `json:"force"`
}

// ClusterRecoverResponse lists the voters the cluster was shrunk to.
type ClusterRecoverResponse struct {
	Survivors []string `json:"survivors"`
}

// ClusterKeyRotateResponse is POST /v1/cluster/key/rotate, run on the leader: every
// node has installed the new gossip key, uses it, and has dropped the old one.
type ClusterKeyRotateResponse struct {
	// Fingerprint identifies the new key (the first 8 bytes of its SHA-256, in hex).
	Fingerprint string `json:"fingerprint"`
	// Keys are the fingerprints of the keys the leader has now.
	Keys []string `json:"keys"`
}

// ConfigApplyRequest is POST /v1/config/apply.
type ConfigApplyRequest struct {
	// Document is the new cluster-wide document (YAML), or a whole config file whose
	// node: section is left out. It is stored in canonical form (defaults spelled out).
	Document string `json:"document"`
	// Comment says why; Author who (default: the node's name).
	Comment string `json:"comment,omitempty"`
	Author  string `json:"author,omitempty"`
	// BaseVersion, if set, refuses the change (409) if another version was committed
	// since.
	BaseVersion *uint64 `json:"base_version,omitempty"`
}

// ConfigApplyResponse is the committed version.
type ConfigApplyResponse struct {
	Version uint64 `json:"version"`
}

// ConfigVersion is one committed version of the cluster-wide document.
type ConfigVersion struct {
	Version  uint64    `json:"version"`
	Document string    `json:"document,omitempty"`
	Author   string    `json:"author,omitempty"`
	Time     time.Time `json:"time"`
	Comment  string    `json:"comment,omitempty"`
}

// ConfigDiffRequest is POST /v1/config/diff: a document to compare with the
// committed one; empty compares the node's own config file.
type ConfigDiffRequest struct {
	Document string `json:"document,omitempty"`
}

// ConfigDiffResponse is a unified diff of the committed document (---) against the
// given one (+++), both in canonical form (defaults filled in, node: left out); Diff is
// "" when they are the same.
type ConfigDiffResponse struct {
	Version uint64 `json:"version"`
	Diff    string `json:"diff"`
}

// ConfigRollbackRequest is POST /v1/config/rollback: commit an earlier version's
// document again, as a new version.
type ConfigRollbackRequest struct {
	Version uint64 `json:"version"`
	Comment string `json:"comment,omitempty"`
}

// ClusterStatus returns the node's view of the cluster.
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	return &out, c.call(ctx, http.MethodGet, "/v1/cluster/status", nil, &out)
}

// ClusterMembers returns every member gossip knows of.
func (c *Client) ClusterMembers(ctx context.Context) ([]ClusterMember, error) {
	var out []ClusterMember
	return out, c.call(ctx, http.MethodGet, "/v1/cluster/members", nil, &out)
}

// ClusterInit makes the node a one-node cluster, seeded from its config file.
func (c *Client) ClusterInit(ctx context.Context) (*ClusterInitResponse, error) {
	var out ClusterInitResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/cluster/init", struct{}{}, &out)
}

// ClusterJoin joins the cluster that the node at address belongs to.
func (c *Client) ClusterJoin(ctx context.Context, req ClusterJoinRequest) (*ClusterStatus, error) {
	var out ClusterStatus
	return &out, c.call(ctx, http.MethodPost, "/v1/cluster/join", req, &out)
}

// ClusterLeave takes the node out of its cluster.
func (c *Client) ClusterLeave(ctx context.Context) error {
	var out struct{}
	return c.call(ctx, http.MethodPost, "/v1/cluster/leave", struct{}{}, &out)
}

// ClusterRemove takes a dead node out of the cluster.
func (c *Client) ClusterRemove(ctx context.Context, node string) error {
	var out struct{}
	return c.call(ctx, http.MethodPost, "/v1/cluster/remove", ClusterRemoveRequest{Node: node}, &out)
}

// ClusterRecover shrinks a cluster that lost its majority to the reachable voters.
func (c *Client) ClusterRecover(ctx context.Context) (*ClusterRecoverResponse, error) {
	var out ClusterRecoverResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/cluster/recover", ClusterRecoverRequest{Force: true}, &out)
}

// ClusterKeyRotate replaces the gossip key on every node (run on the leader).
func (c *Client) ClusterKeyRotate(ctx context.Context) (*ClusterKeyRotateResponse, error) {
	var out ClusterKeyRotateResponse
	return &out, c.call(ctx, http.MethodPost, "/v1/cluster/key/rotate", struct{}{}, &out)
}

// ConfigApply commits a new cluster-wide document.
func (c *Client) ConfigApply(ctx context.Context, req ConfigApplyRequest) (*ConfigApplyResponse, error) {
	var out ConfigApplyResponse
	return &out, c.callConfig(ctx, "/v1/config/apply", req, &out)
}

// ConfigGet returns the committed document (version 0: the latest).
func (c *Client) ConfigGet(ctx context.Context, version uint64) (*ConfigVersion, error) {
	var out ConfigVersion
	path := "/v1/config"
	if version > 0 {
		path += "?version=" + url.QueryEscape(strconv.FormatUint(version, 10))
	}
	return &out, c.call(ctx, http.MethodGet, path, nil, &out)
}

// ConfigDiff compares a document (or the node's file, for "") with the committed one.
func (c *Client) ConfigDiff(ctx context.Context, doc string) (*ConfigDiffResponse, error) {
	var out ConfigDiffResponse
	return &out, c.callConfig(ctx, "/v1/config/diff", ConfigDiffRequest{Document: doc}, &out)
}

// ConfigHistory returns the kept versions, oldest first, without their documents.
func (c *Client) ConfigHistory(ctx context.Context) ([]ConfigVersion, error) {
	var out []ConfigVersion
	return out, c.call(ctx, http.MethodGet, "/v1/config/history", nil, &out)
}

// ConfigRollback commits an earlier version's document again.
func (c *Client) ConfigRollback(ctx context.Context, req ConfigRollbackRequest) (*ConfigApplyResponse, error) {
	var out ConfigApplyResponse
	return &out, c.callConfig(ctx, "/v1/config/rollback", req, &out)
}

// callConfig is call for the POSTs that send a document: an invalid one is answered 422
// with its problems (as a reload's), returned as an *Error listing them.
func (c *Client) callConfig(ctx context.Context, path string, in, out any) error {
	code, body, err := c.roundTrip(ctx, http.MethodPost, path, in)
	if err != nil {
		return err
	}
	var refused ReloadResponse
	if code == http.StatusUnprocessableEntity && json.Unmarshal(body, &refused) == nil && len(refused.Errors) > 0 {
		return &Error{StatusCode: code, Message: "document refused, nothing committed:\n" + strings.Join(refused.Errors, "\n")}
	}
	if code != http.StatusOK {
		return answerError(http.MethodPost, path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin api: bad answer to POST %s: %w", path, err)
	}
	return nil
}
