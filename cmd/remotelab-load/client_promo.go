package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/remotelab-go/remotelab/client"
)

// runPromotionClient measures hand-overs with package client: each session
// is a client.Client's Open (create, then long-poll until active) and
// Session.Close.
func runPromotionClient(ctx context.Context, e *env, r *scenarioReport) error {
	srv, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer srv.Stop()
	c := newAPIClient(srv.URL, 16, 1)
	defer c.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(ctx context.Context, created func()) (uint64, func(context.Context) error, error) {
		hc := &http.Client{Transport: createdHook{c.tr, created}}
		cl, err := client.New(srv.URL, client.WithHTTPClient(hc), client.WithLogger(quiet))
		if err != nil {
			return 0, nil, err
		}
		s, err := cl.Open(ctx)
		if err != nil {
			return 0, nil, err
		}
		return 0, s.Close, nil
	}
	lat, err := chain(ctx, e.cfg.Handovers, e.cfg.Hold, 30*time.Second, open, r)
	if err != nil {
		return err
	}
	r.add("hand-over, package client (Open → Close)", "%s", summarize(lat))
	return nil
}

// createdHook calls created when a POST /session got its answer.
type createdHook struct {
	rt      http.RoundTripper
	created func()
}

func (h createdHook) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.rt.RoundTrip(req)
	if err == nil && req.Method == http.MethodPost && req.URL.Path == "/session" && resp.StatusCode == http.StatusCreated {
		h.created()
	}
	return resp, err
}
