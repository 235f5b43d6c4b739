package api_test

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/remotelab-go/remotelab/api"
)

func ptr(v float64) *float64 { return &v }

func TestSessionRequestValidate(t *testing.T) {
	labels := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[strings.Repeat("k", i+1)] = "v"
		}
		return m
	}
	for _, tc := range []struct {
		name string
		req  api.SessionRequest
		loc  []string // of the one issue; nil: valid
	}{
		{"empty", api.SessionRequest{}, nil},
		{"full", api.SessionRequest{Owner: "alice@ci-3 (nightly)", Labels: map[string]string{"job": "https://ci/1", "a.b_c-D9": ""},
			WaitTimeout: ptr(90), MaxHold: ptr(0.5)}, nil},
		{"owner 128 runes", api.SessionRequest{Owner: strings.Repeat("é", 128)}, nil},
		{"owner 129 runes", api.SessionRequest{Owner: strings.Repeat("é", 129)}, []string{"body", "owner"}},
		{"owner control char", api.SessionRequest{Owner: "a\nb"}, []string{"body", "owner"}},
		{"owner invalid utf8", api.SessionRequest{Owner: "a\xffb"}, []string{"body", "owner"}},
		{"16 labels", api.SessionRequest{Labels: labels(16)}, nil},
		{"17 labels", api.SessionRequest{Labels: labels(17)}, []string{"body", "labels"}},
		{"empty key", api.SessionRequest{Labels: map[string]string{"": "v"}}, []string{"body", "labels"}},
		{"key 64", api.SessionRequest{Labels: map[string]string{strings.Repeat("k", 64): "v"}}, []string{"body", "labels"}},
		{"key bad char", api.SessionRequest{Labels: map[string]string{"a/b": "v"}}, []string{"body", "labels"}},
		{"value 257", api.SessionRequest{Labels: map[string]string{"k": strings.Repeat("v", 257)}}, []string{"body", "labels", "k"}},
		{"value tab", api.SessionRequest{Labels: map[string]string{"k": "a\tb"}}, []string{"body", "labels", "k"}},
		{"wait 0", api.SessionRequest{WaitTimeout: ptr(0)}, []string{"body", "wait_timeout"}},
		{"wait negative", api.SessionRequest{WaitTimeout: ptr(-1)}, []string{"body", "wait_timeout"}},
		{"wait NaN", api.SessionRequest{WaitTimeout: ptr(math.NaN())}, []string{"body", "wait_timeout"}},
		{"hold too long", api.SessionRequest{MaxHold: ptr(api.MaxLimitSeconds + 1)}, []string{"body", "max_hold"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issues := tc.req.Validate()
			if tc.loc == nil {
				assert.Empty(t, issues)
				return
			}
			if assert.Len(t, issues, 1) {
				assert.Equal(t, tc.loc, issues[0].Loc)
				assert.Equal(t, api.IssueValue, issues[0].Type)
				if s, ok := issues[0].Input.(string); ok {
					assert.LessOrEqual(t, utf8.RuneCountInString(s), api.MaxEchoLen+1)
				}
			}
		})
	}
}

func TestClip(t *testing.T) {
	assert.Equal(t, "short", api.Clip("short"))
	long := strings.Repeat("ü", 1<<20)
	c := api.Clip(long)
	assert.Equal(t, api.MaxEchoLen+1, utf8.RuneCountInString(c))
	assert.True(t, strings.HasSuffix(c, "…"))
	assert.Equal(t, strings.Repeat("x", api.MaxEchoLen), api.Clip(strings.Repeat("x", api.MaxEchoLen)))
}

func TestSeconds(t *testing.T) {
	assert.Zero(t, api.Seconds(nil))
	assert.Equal(t, "1m30s", api.Seconds(ptr(90)).String())
}
