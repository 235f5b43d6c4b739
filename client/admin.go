package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/remotelab-go/remotelab/api"
)

// Admin acts on the whole lab host: the /admin routes of the server. They
// need an admin token (WithToken) on a server with authentication, and a
// loopback address on a server without it; otherwise they fail with
// ErrUnauthorized or ErrForbidden. Each method blocks for one request;
// every action is written to the server's audit log before it answers.
type Admin struct {
	c *Client
}

// Admin returns the admin calls of the client.
func (c *Client) Admin() *Admin { return &Admin{c: c} }

// Evict ends the session id (its full id, or a unique prefix of at least
// 8 characters as the queue shows it) with outcome evicted and reason
// "evicted by <admin>: <reason>": its lab references drop and the next
// session is promoted. Its client learns the reason on its next call.
// Errors: ErrNotFound for no such session, ErrConflict for a prefix of
// several, ErrBadRequest for an empty id or reason (checked before
// sending) or a reason the server refuses.
func (a *Admin) Evict(ctx context.Context, id, reason string) error {
	id, reason = strings.TrimSpace(id), strings.TrimSpace(reason)
	switch {
	case id == "":
		return fmt.Errorf("evict: %w: no session id", ErrBadRequest)
	case reason == "":
		return fmt.Errorf("evict %s: %w: a reason is required", api.Clip(id), ErrBadRequest)
	}
	body, err := json.Marshal(api.EvictRequest{Reason: reason})
	if err != nil {
		return fmt.Errorf("evict %s: encode request: %w", api.Clip(id), err)
	}
	if err := a.post(ctx, "/admin/sessions/"+url.PathEscape(id)+"/evict", body, nil); err != nil {
		return fmt.Errorf("evict %s: %w", api.Clip(id), err)
	}
	a.c.cfg.logger.Info("Session evicted", "session", api.ShortID(id), "reason", reason)
	return nil
}

// DestroyLab tears the host's lab down now, whoever holds it (DELETE
// /admin/lab), and reports whether there was one. It blocks until the
// teardown finished, bounded by ctx and the acquisition timeout.
func (a *Admin) DestroyLab(ctx context.Context) (bool, error) {
	code, err := a.c.send(ctx, request{
		method:  http.MethodDelete,
		path:    "/admin/lab",
		timeout: a.c.cfg.acquisitionTimeout,
	}, nil)
	if err != nil {
		return false, fmt.Errorf("destroy lab: %w", err)
	}
	return code == http.StatusAccepted, nil
}

// Drain stops promotions (POST /admin/drain): the holder may finish,
// sessions still queue, and the server reports not ready until Resume.
func (a *Admin) Drain(ctx context.Context) error {
	if err := a.post(ctx, "/admin/drain", nil, nil); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// Resume undoes Drain (POST /admin/resume).
func (a *Admin) Resume(ctx context.Context) error {
	if err := a.post(ctx, "/admin/resume", nil, nil); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	return nil
}

// Unquarantine lifts the host's quarantine by hand (POST
// /admin/unquarantine) and reports whether the host was quarantined.
func (a *Admin) Unquarantine(ctx context.Context) (bool, error) {
	var out api.Unquarantine
	if err := a.post(ctx, "/admin/unquarantine", nil, &out); err != nil {
		return false, fmt.Errorf("unquarantine: %w", err)
	}
	return out.Lifted, nil
}

// Audit returns the last limit entries of the audit log, oldest first
// (GET /admin/audit); limit 0 asks for the server's default (100).
func (a *Admin) Audit(ctx context.Context, limit int) ([]api.AuditEntry, error) {
	var out []api.AuditEntry
	if err := a.c.list(ctx, "/admin/audit", limit, &out); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return out, nil
}

// post sends an admin POST with an optional JSON body, decoding the
// answer into out unless it is nil.
func (a *Admin) post(ctx context.Context, path string, body []byte, out any) error {
	r := request{method: http.MethodPost, path: path, timeout: a.c.cfg.requestTimeout}
	if body != nil {
		r.body, r.contentType = bytes.NewReader(body), "application/json"
	}
	_, err := a.c.send(ctx, r, out)
	return err
}
