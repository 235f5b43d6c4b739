package httpserver

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// dashboardHTML is the live dashboard: one page, no external assets, fed
// by GET /events.
//
//go:embed web/index.html
var dashboardHTML []byte

// dashboardCSP is the Content-Security-Policy of the dashboard. Its inline
// script and style are allowed by their hashes, not by 'unsafe-inline', so
// that markup which client input might ever smuggle into the page (an
// owner such as `<img src=x onerror=...>`) can run no script.
var dashboardCSP = "default-src 'self'; script-src " + inlineHashes("script") +
	"; style-src " + inlineHashes("style") + "; base-uri 'none'; form-action 'none'"

// inlineHashes returns the CSP sources ('sha256-…') of the page's inline
// elements of the given tag.
func inlineHashes(tag string) string {
	re := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`)
	var srcs []string
	for _, m := range re.FindAllSubmatch(dashboardHTML, -1) {
		sum := sha256.Sum256(m[1])
		srcs = append(srcs, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	if len(srcs) == 0 {
		return "'none'"
	}
	return strings.Join(srcs, " ")
}

// dashboard handles GET /.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(dashboardHTML)))
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(dashboardHTML)
}
