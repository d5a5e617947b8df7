package opsapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/operatorauth"
)

// StateVersion is one kept Terraform state of a workspace (local backend).
type StateVersion struct {
	// Version names it for GET .../state?version=.
	Version string `json:"version"`
	// Run and Claim made it; empty for a state kept from before versions.
	Run   string `json:"run,omitempty"`
	Claim string `json:"claim,omitempty"`
	Size  int64  `json:"size"`
	// SHA256 of the state file, hex.
	SHA256  string    `json:"sha256,omitempty"`
	Created time.Time `json:"created"`
	// Current: the state the workspace's next plan starts from.
	Current bool `json:"current"`
}

// StateVersionList answers GET /v1/tenants/{tenant}/workspaces/{workspace}/state/versions,
// newest first.
type StateVersionList struct {
	Versions []StateVersion `json:"versions"`
}

// Headers of GET .../state.
const (
	HeaderStateVersion = "Bote-State-Version"
	HeaderStateSHA256  = "Bote-State-Sha256"
)

// stateRoutes read a workspace's kept Terraform states. Listing them is a
// reader's; reading one takes operator: a state holds every resource
// attribute in the clear, secrets included, which a reader (who sees
// redacted logs) must not get.
func (s *Server) stateRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/workspaces/{workspace}/state/versions", role: operatorauth.RoleReader, handler: s.needRuns(s.listStateVersions)},
		{method: http.MethodGet, path: statePath, role: operatorauth.RoleOperator, handler: s.needRuns(s.getState)},
	}
}

const statePath = "/v1/tenants/{tenant}/workspaces/{workspace}/state"

// auditedRead reports a read the audit log records although it changes
// nothing: a state read hands out every secret the state holds.
func auditedRead(pattern string) bool { return pattern == http.MethodGet+" "+statePath }

// stateWorkspace checks the workspace exists (an unknown one is 404, not
// an empty history).
func (s *Server) stateWorkspace(w http.ResponseWriter, r *http.Request) (tenant, workspace string, ok bool) {
	tenant, workspace = r.PathValue("tenant"), r.PathValue("workspace")
	if _, err := s.cfg.Runs.GetWorkspace(r.Context(), tenant, workspace); err != nil {
		s.runsError(w, r, err)
		return "", "", false
	}
	return tenant, workspace, true
}

func (s *Server) listStateVersions(w http.ResponseWriter, r *http.Request) {
	tenant, workspace, ok := s.stateWorkspace(w, r)
	if !ok {
		return
	}
	vs, err := s.cfg.Artifacts.StateVersions(r.Context(), tenant, workspace)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	out := StateVersionList{Versions: make([]StateVersion, 0, len(vs))}
	for _, v := range vs {
		out.Versions = append(out.Versions, StateVersion(v))
	}
	writeJSON(w, http.StatusOK, out)
}

// getState answers with the state file itself, byte for byte, and its
// version and SHA-256 in headers.
func (s *Server) getState(w http.ResponseWriter, r *http.Request) {
	tenant, workspace, ok := s.stateWorkspace(w, r)
	if !ok {
		return
	}
	version := r.URL.Query().Get("version")
	data, err := s.cfg.Artifacts.OpenState(r.Context(), tenant, workspace, version)
	if errors.Is(err, artifacts.ErrNotFound) {
		msg := fmt.Sprintf("workspace %s of tenant %s has no state yet (no apply stored one)", workspace, tenant)
		if version != "" && version != artifacts.CurrentVersion {
			msg = fmt.Sprintf("workspace %s of tenant %s has no state version %s (opsbot state versions lists them)", workspace, tenant, version)
		}
		writeError(w, r, http.StatusNotFound, CodeNotFound, msg)
		return
	}
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if version == "" {
		version = artifacts.CurrentVersion
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set(HeaderStateVersion, version)
	sum := sha256.Sum256(data)
	w.Header().Set(HeaderStateSHA256, hex.EncodeToString(sum[:]))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}
