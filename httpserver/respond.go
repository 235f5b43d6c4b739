package httpserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/remotelab-go/remotelab/api"
)

// reqError is an error answer: a detail string, or validation issues
// (422 in the list shape) when issues is set.
type reqError struct {
	code   int
	detail string
	issues []api.ValidationIssue
	// gone: the session ended meanwhile; the handler answers its end.
	gone bool
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

// smallBodyTimeout bounds the reading of every request body but an
// upload's (which has the upload timeout): a client trickling a small body
// must not hold a connection for ever.
const smallBodyTimeout = 30 * time.Second

// readSmallBody reads a small JSON body (what names it in errors, at most
// limit bytes): 413 when larger, 408 when it does not arrive within
// smallBodyTimeout (the guard set that deadline), 400 when cut.
func readSmallBody(w http.ResponseWriter, r *http.Request, what string, limit int64) ([]byte, *reqError) {
	data, err := io.ReadAll(http.MaxBytesReader(unwrapWriter(w), r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errorf(http.StatusRequestEntityTooLarge, "%s larger than %d bytes", what, limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, errorf(http.StatusRequestTimeout, "%s body did not arrive within %v", what, smallBodyTimeout)
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "Cannot read the request body: %s", api.Clip(err.Error()))
	}
	return data, nil
}
