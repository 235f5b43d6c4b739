package httpserver_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPanicIsA500: a panicking handler answers a JSON 500, is logged at
// ERROR with its stack, and the server keeps serving on the same client.
func TestPanicIsA500(t *testing.T) {
	e := newEnv(t)
	e.srv.HandleFuncForTest("GET /test/panic", func(http.ResponseWriter, *http.Request) {
		panic("handler bug")
	})

	for range 3 {
		res, err := e.client.Get(e.base + "/test/panic")
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, http.StatusInternalServerError, res.StatusCode)
		assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
		assert.JSONEq(t, `{"detail":"Internal Server Error"}`, string(body))

		assert.Equal(t, http.StatusNoContent, e.get("/healthz", "").code)
	}
	out := e.logs.String()
	assert.Contains(t, out, "level=ERROR msg=\"panic serving request\"")
	assert.Contains(t, out, "panic=\"handler bug\"")
	assert.Contains(t, out, "panic_test.go", "the stack is logged")
	assert.Contains(t, out, "path=/test/panic status=500")
}
