package httpserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

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
