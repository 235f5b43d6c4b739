package httpserver

import (
	_ "embed"
	"net/http"
	"strconv"
)

// dashboardHTML is the live dashboard: one page, no external assets, fed
// by GET /events.
//
//go:embed web/index.html
var dashboardHTML []byte

// dashboard handles GET /.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(dashboardHTML)))
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(dashboardHTML)
}
