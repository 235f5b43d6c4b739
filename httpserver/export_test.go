package httpserver

import "net/http"

// HandleFuncForTest registers an extra route, so tests can reach
// ServeHTTP's own behaviour (panic recovery) through a handler of theirs.
func (s *Server) HandleFuncForTest(pattern string, h http.HandlerFunc) {
	s.handle(pattern, access{}, h)
}
