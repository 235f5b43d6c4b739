package httpserver

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/auth"
)

// ServeHTTP implements http.Handler. Around every route it answers 503
// while draining, authenticates and authorises the caller, logs one line
// per request, counts it in the metrics, answers unknown routes and methods
// with JSON errors, and turns a panicking handler into a 500 (logged with
// its stack) so the server keeps serving.
//
// The mux routes each request once: every route's handler is wrapped by
// guard, which does the checks, and what the mux answers itself (no
// route, a method the route does not take, a redirect) is captured and
// answered in JSON by noRoute.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, capturing: true}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			sw.capturing = false
			if sw.status == 0 {
				writeError(sw, http.StatusInternalServerError, api.DetailInternalError)
			}
		}
		rt := sw.route
		if rt == nil {
			rt = s.unrouted
		}
		d := time.Since(start)
		rt.metrics.Observe(sw.code(), d)
		s.logRequest(r, sw, rt, d)
	}()
	s.mux.ServeHTTP(sw, r)
	if sw.capturing {
		s.noRoute(sw)
	}
}

// handle registers a route with its access rules.
func (s *Server) handle(pattern string, a access, h http.HandlerFunc) {
	rt := &route{access: a, metrics: s.metrics.Route(routeLabel(pattern))}
	s.mux.HandleFunc(pattern, s.guard(rt, h))
}

// guard wraps the handler of a route: it answers 503 while draining (but
// the probes), and authenticates and authorises the caller.
func (s *Server) guard(rt *route, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw, _ := w.(*statusWriter)
		if sw != nil {
			sw.route, sw.capturing = rt, false
		}
		if s.draining.Load() && !rt.probe {
			writeError(w, http.StatusServiceUnavailable, api.DetailShuttingDown)
			return
		}
		if r.ContentLength != 0 {
			// Also bounds net/http's draining of a body the handler
			// left unread. (Requests without a body get no deadline:
			// long-polls and event streams must not be cut. POST /lab
			// replaces it with the upload timeout once it reads.)
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(smallBodyTimeout))
		}
		if !rt.probe {
			id, ok := s.authorize(w, r, rt.access)
			if sw != nil {
				sw.actor = id.Name // a caller refused for its role is logged too
			}
			if !ok {
				return
			}
			if s.auth != nil {
				// Without authentication nobody asks (identity and
				// actor fall back to the local admin): no copy of
				// the request.
				r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
			}
		}
		h(w, r)
	}
}

// routeLabel is the metrics label of a route pattern ("none" for requests
// no route matched, so raw paths never become labels).
func routeLabel(pattern string) string {
	if pattern == "" {
		return "none"
	}
	return pattern
}

// identityKey is the context key of the caller's identity.
type identityKey struct{}

// identity returns the caller's identity and whether authentication is
// on (without it the identity is the zero Identity).
func (s *Server) identity(r *http.Request) (auth.Identity, bool) {
	id, _ := r.Context().Value(identityKey{}).(auth.Identity)
	return id, s.auth != nil
}

// localActor names an admin without authentication (a loopback caller).
const localActor = "local"

// authorize checks the caller's credentials against the route's access:
// 401 without a known token, 403 for a role too low (or, without
// authentication, a non-loopback caller of an admin route). A caller
// refused for its role is still returned, for the request log.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, a access) (auth.Identity, bool) {
	if s.auth == nil {
		if a.admin && !loopback(r.RemoteAddr) {
			writeError(w, http.StatusForbidden, api.DetailAdminLoopbackOnly)
			return auth.Identity{}, false
		}
		return auth.Identity{Name: localActor, Role: auth.Admin}, true
	}
	token, sent := bearerToken(r)
	var id auth.Identity
	ok := false
	if sent {
		id, ok = s.auth.Lookup(token)
	}
	if !ok {
		// One challenge per header: browsers read only the first of a
		// list, and Basic must be offered for them to prompt.
		w.Header().Add("WWW-Authenticate", `Basic realm="remotelab"`)
		w.Header().Add("WWW-Authenticate", `Bearer realm="remotelab"`)
		detail := api.DetailUnauthorized
		if sent {
			detail = api.DetailUnknownToken
		}
		writeError(w, http.StatusUnauthorized, detail)
		return auth.Identity{}, false
	}
	if !id.Role.Allows(a.need) {
		writeError(w, http.StatusForbidden, fmt.Sprintf(api.DetailRoleTooLow, id.Role, a.need))
		return id, false
	}
	return id, true
}

// bearerToken returns the token of "Authorization: Bearer <token>", or the
// password of HTTP Basic (any user name), which is how the unchanged
// Python client authenticates through ~/.netrc.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "bearer":
		return rest, rest != ""
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", false
		}
		_, pass, ok := strings.Cut(string(raw), ":")
		return pass, ok && pass != ""
	}
	return "", false
}

// loopback reports whether a remote address is a loopback address.
func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// clientHost returns the host part of a remote address (the owner of a
// session created without one when authentication is off).
func clientHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// noRoute answers a request the mux answered itself (404, 405 or a
// redirect; sw captured it) with the same status and Allow or Location
// header, and a JSON body.
func (s *Server) noRoute(sw *statusWriter) {
	sw.capturing = false
	code := sw.captured
	if code == 0 {
		code = http.StatusNotFound
	}
	for _, k := range []string{"Allow", "Location"} {
		if v := sw.capturedHeader.Values(k); len(v) > 0 {
			sw.Header()[k] = v
		}
	}
	writeError(sw, code, http.StatusText(code))
}

// logRequest logs one line per request: at INFO for the routes that change
// something, at DEBUG for reads, polls, heartbeats (a busy server answers
// tens of thousands of them a second) and probes, at WARN for server
// errors but a probe's.
func (s *Server) logRequest(r *http.Request, sw *statusWriter, rt *route, d time.Duration) {
	level := slog.LevelDebug
	switch {
	case rt.probe:
	case sw.code() >= 500:
		level = slog.LevelWarn
	case rt.info:
		level = slog.LevelInfo
	}
	ctx := r.Context()
	if !s.log.Enabled(ctx, level) {
		return
	}
	path := r.URL.Path
	id := r.PathValue("id")
	if id != "" {
		// Session ids are logged shortened, in paths too.
		path = strings.Replace(path, id, api.ShortID(id), 1)
	}
	if sw.session != "" {
		id = sw.session
	} else if h := r.Header.Get(api.HeaderSessionID); h != "" {
		id = h
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("path", api.Clip(path)),
		slog.Int("status", sw.code()),
		slog.Duration("duration", d),
		slog.String("client", r.RemoteAddr),
	)
	if id != "" {
		attrs = append(attrs, slog.String("session", api.ShortID(id)))
	}
	if sw.actor != "" && s.auth != nil {
		attrs = append(attrs, slog.String("caller", sw.actor))
	}
	s.log.LogAttrs(ctx, level, "request", attrs...)
}

// statusWriter records the status code, the route, the session a request
// acted for and the caller, for the request log and the metrics. Until a
// route's guard runs it is capturing: what the mux answers by itself is
// kept (status and headers) and not sent.
type statusWriter struct {
	http.ResponseWriter
	status  int
	route   *route
	session string
	actor   string

	capturing      bool
	captured       int
	capturedHeader http.Header
}

func (w *statusWriter) Header() http.Header {
	if w.capturing {
		if w.capturedHeader == nil {
			w.capturedHeader = make(http.Header)
		}
		return w.capturedHeader
	}
	return w.ResponseWriter.Header()
}

func (w *statusWriter) WriteHeader(code int) {
	if w.capturing {
		if w.captured == 0 {
			w.captured = code
		}
		return
	}
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.capturing {
		w.WriteHeader(http.StatusOK)
		return len(p), nil
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// code is the answer's status (200 when the handler wrote none).
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets event streams flush through the wrapper.
func (w *statusWriter) Flush() {
	if w.capturing {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// noteSession names the session of the request in the request log.
func noteSession(w http.ResponseWriter, id string) {
	if sw, ok := w.(*statusWriter); ok {
		sw.session = id
	}
}

// unwrapWriter returns the connection's own ResponseWriter, which
// http.MaxBytesReader needs to make the server close the connection after
// an oversized body.
func unwrapWriter(w http.ResponseWriter) http.ResponseWriter {
	if sw, ok := w.(*statusWriter); ok {
		return sw.ResponseWriter
	}
	return w
}
