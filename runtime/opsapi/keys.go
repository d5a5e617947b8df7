package opsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/botehq/platform/runtime/operatorauth"
)

// KeyManager manages operator API keys (*operatorauth.Authenticator).
type KeyManager interface {
	CreateKey(ctx context.Context, id, description string, g operatorauth.Grants) (string, operatorauth.KeyInfo, error)
	ListKeys(ctx context.Context) ([]operatorauth.KeyInfo, error)
	RotateKey(ctx context.Context, id string) (string, operatorauth.KeyInfo, error)
	RevokeKey(ctx context.Context, id string) (operatorauth.KeyInfo, error)
}

func (s *Server) keyRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/v1/keys", admin: true, handler: s.needKeys(s.listKeys)},
		{method: http.MethodPost, path: "/v1/keys", admin: true, handler: s.needKeys(s.createKey)},
		{method: http.MethodPost, path: "/v1/keys/{key}/rotate", admin: true, handler: s.needKeys(s.rotateKey)},
		{method: http.MethodPost, path: "/v1/keys/{key}/revoke", admin: true, handler: s.needKeys(s.revokeKey)},
	}
}

// needKeys answers 503 when the server has no key manager.
func (s *Server) needKeys(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Keys == nil {
			writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, "API keys are not managed by this server (start opsserver with --api-keys-file)")
			return
		}
		h(w, r)
	}
}

func (s *Server) keysError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, operatorauth.ErrKeyNotFound):
		writeError(w, r, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, operatorauth.ErrKeyExists), errors.Is(err, operatorauth.ErrKeyRevoked):
		writeError(w, r, http.StatusConflict, CodeConflict, err.Error())
	case errors.Is(err, operatorauth.ErrNoKeysFile):
		writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
	default:
		s.internalError(w, r, err)
	}
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Keys.ListKeys(r.Context())
	if err != nil {
		s.keysError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, KeyList{Keys: append([]APIKey{}, keys...)})
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req CreateKeyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	g := operatorauth.Grants{Admin: req.Admin, Tenants: req.Tenants}
	if err := checkNewKey(req.ID, g); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	key, info, err := s.cfg.Keys.CreateKey(r.Context(), req.ID, req.Description, g)
	if err != nil {
		s.keysError(w, r, err)
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "API key created", "key", info.ID, "grants", info.Grants.String(), "by", operator(r))
	noteDetail(w, "key %s created with grants %s", info.ID, info.Grants.String())
	writeJSON(w, http.StatusCreated, NewKey{Key: key, APIKey: info})
}

// checkNewKey reports what is wrong with a key to create.
func checkNewKey(id string, g operatorauth.Grants) error {
	if err := operatorauth.ValidateKeyID(id); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if err := g.Validate(); err != nil {
		return err
	}
	switch {
	case g.Empty():
		return errors.New("admin or tenants: a key without grants may do nothing")
	case g.Admin && len(g.Tenants) > 0:
		return errors.New("admin and tenants: an admin has every tenant already; give one")
	}
	return nil
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request) {
	key, info, err := s.cfg.Keys.RotateKey(r.Context(), r.PathValue("key"))
	if err != nil {
		s.keysError(w, r, err)
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "API key rotated", "key", info.ID, "by", operator(r))
	writeJSON(w, http.StatusOK, NewKey{Key: key, APIKey: info})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	info, err := s.cfg.Keys.RevokeKey(r.Context(), r.PathValue("key"))
	if err != nil {
		s.keysError(w, r, err)
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "API key revoked", "key", info.ID, "by", operator(r))
	writeJSON(w, http.StatusOK, info)
}
