package httpserver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/remotelab-go/remotelab/api"
)

// ServeHTTP implements http.Handler. It logs one line per request, answers
// unknown routes and methods with JSON errors, and turns a panicking
// handler into a 500 (logged with its stack) so the server keeps serving.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw.status == 0 {
				writeError(sw, http.StatusInternalServerError, api.DetailInternalError)
			}
		}
		s.logRequest(r, sw, time.Since(start))
	}()
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.noRoute(sw, r)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// noRoute answers a request no pattern matches: the mux's own 404 or 405
// (or redirect), with a JSON body.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	c := &captureWriter{h: make(http.Header)}
	h.ServeHTTP(c, r)
	if c.code == 0 {
		c.code = http.StatusNotFound
	}
	for _, k := range []string{"Allow", "Location"} {
		if v := c.h.Values(k); len(v) > 0 {
			w.Header()[k] = v
		}
	}
	writeError(w, c.code, http.StatusText(c.code))
}

func (s *Server) logRequest(r *http.Request, sw *statusWriter, d time.Duration) {
	level := slog.LevelInfo
	if r.URL.Path == "/healthz" {
		level = slog.LevelDebug
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
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", path),
		slog.Int("status", status),
		slog.Duration("duration", d),
	}
	if id != "" {
		attrs = append(attrs, slog.String("session", api.ShortID(id)))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// statusWriter records the status code and the session a request acted
// for, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status  int
	session string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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

// captureWriter swallows a response, keeping its status and headers.
type captureWriter struct {
	h    http.Header
	code int
}

func (c *captureWriter) Header() http.Header { return c.h }

func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(p), nil
}

// reqError is an error answer: a detail string, or validation issues
// (422 in the list shape) when issues is set.
type reqError struct {
	code   int
	detail string
	issues []api.ValidationIssue
}

func (e *reqError) write(w http.ResponseWriter) {
	if len(e.issues) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, api.ValidationError{Detail: e.issues})
		return
	}
	writeError(w, e.code, e.detail)
}

func errorf(code int, format string, args ...any) *reqError {
	return &reqError{code: code, detail: fmt.Sprintf(format, args...)}
}

func fail(code int, detail string) *reqError {
	return &reqError{code: code, detail: detail}
}

func invalid(issues ...api.ValidationIssue) *reqError {
	return &reqError{code: http.StatusUnprocessableEntity, issues: issues}
}

// missing is the issue of an absent required field.
func missing(loc ...string) api.ValidationIssue {
	return api.ValidationIssue{Type: api.IssueMissing, Loc: loc, Msg: "Field required"}
}

// badBool is the issue of a boolean field that did not parse.
func badBool(input string, loc ...string) api.ValidationIssue {
	return api.ValidationIssue{
		Type:  api.IssueBoolParsing,
		Loc:   loc,
		Msg:   "Input should be a valid boolean, unable to interpret input",
		Input: input,
	}
}

func writeError(w http.ResponseWriter, code int, detail string) {
	writeJSON(w, code, api.Error{Detail: detail})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(api.Error{Detail: api.DetailInternalError})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
