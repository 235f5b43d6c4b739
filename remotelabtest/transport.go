package remotelabtest

import (
	"errors"
	"net/http"
	"net/http/httptest"
)

// InMemoryTransport returns an http.RoundTripper that serves each request
// by calling h directly, without a socket. Real sockets cannot be used
// inside a testing/synctest bubble; with this transport a client and a
// server (or a hand-written fake of one) both live in the bubble, and
// their timers run on the bubble's clock.
//
// The handler runs in the calling goroutine with the request's context, so
// cancelling the request cancels the handler; the response is returned
// once the handler has returned. A handler that aborts with
// panic(http.ErrAbortHandler) fails the request, as a broken connection
// would; any other panic is not recovered.
func InMemoryTransport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

// errAborted is the error of a request whose handler aborted.
var errAborted = errors.New("remotelabtest: handler aborted the response")

func (t handlerTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	defer func() {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			resp, err = nil, errAborted
		}
	}()
	r := req.Clone(req.Context())
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "192.0.2.1:1234"
	r.Host = req.URL.Host
	if r.Body == nil {
		r.Body = http.NoBody
	}
	if r.Body != http.NoBody && r.ContentLength == 0 {
		r.ContentLength = -1 // unknown, as a server sees a chunked body
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	resp = rec.Result()
	resp.Request = req
	return resp, nil
}
