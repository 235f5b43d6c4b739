package auth_test

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/auth"
)

func TestNewToken(t *testing.T) {
	alphabet := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 100 {
		tok, err := auth.NewToken()
		require.NoError(t, err)
		require.Len(t, tok, 5+43)
		require.True(t, strings.HasPrefix(tok, auth.TokenPrefix), tok)
		body := strings.TrimPrefix(tok, auth.TokenPrefix)
		require.Regexp(t, alphabet, body)
		raw, err := base64.RawURLEncoding.DecodeString(body)
		require.NoError(t, err)
		require.Len(t, raw, 32)
		require.False(t, seen[tok], "token repeated: %s", tok)
		seen[tok] = true
	}
}

func TestHash(t *testing.T) {
	assert.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", auth.Hash("abc"))
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", auth.Hash(""))
}

func TestCheckName(t *testing.T) {
	good := []string{"alice", "ci-runner 2", "Zoë", "名前", "a", "x@example.org", strings.Repeat("é", auth.MaxNameLen)}
	for _, name := range good {
		assert.NoError(t, auth.CheckName(name), "%q", name)
	}
	bad := []struct{ name, msg string }{
		{"", "name is empty"},
		{strings.Repeat("a", auth.MaxNameLen+1), "longer than 128 characters"},
		{" alice", "leading or trailing spaces"},
		{"alice ", "leading or trailing spaces"},
		{"al\tice", "unprintable character U+0009"},
		{"al\nice", "unprintable character U+000A"},
		{"al\u00a0ice", "unprintable character U+00A0"},
		{"al\u200bice", "unprintable character U+200B"},
		{"al\xffice", "not valid UTF-8"},
	}
	for _, tt := range bad {
		err := auth.CheckName(tt.name)
		require.Error(t, err, "%q", tt.name)
		assert.Contains(t, err.Error(), tt.msg, "%q", tt.name)
	}
}

func TestEntry(t *testing.T) {
	tok, err := auth.NewToken()
	require.NoError(t, err)
	got := auth.Entry("alice", auth.User, tok)
	assert.Equal(t, "  - name: alice\n    role: user\n    sha256: "+auth.Hash(tok)+"\n", got)
}

// TestEntryRoundTrip checks that Parse reads what Entry writes, names that
// YAML would otherwise read as something else included.
func TestEntryRoundTrip(t *testing.T) {
	names := []string{"alice", "yes", "null", "~", "123", "0x1F", "- dash", "a: b", "#hash", "a #b", "'quoted'",
		`"dq"`, "*alias", "&anchor", "!tag", "[list]", "{map}", "%percent", "@at", "`tick", "Zoë", "x" + strings.Repeat(" y", 60)}
	for _, role := range []auth.Role{auth.Viewer, auth.User, auth.Admin} {
		var b strings.Builder
		b.WriteString("tokens:\n")
		tokens := map[string]string{}
		for _, name := range names {
			tok, err := auth.NewToken()
			require.NoError(t, err)
			tokens[name] = tok
			b.WriteString(auth.Entry(name, role, tok))
		}
		table, err := auth.Parse([]byte(b.String()))
		require.NoError(t, err, b.String())
		require.Equal(t, len(names), table.Len())
		for name, tok := range tokens {
			id, ok := table.Lookup(tok)
			require.True(t, ok, name)
			assert.Equal(t, auth.Identity{Name: name, Role: role}, id)
		}
	}
}

func TestEntryPanicsOnMisuse(t *testing.T) {
	assert.PanicsWithValue(t, "auth.Entry: name is empty", func() { auth.Entry("", auth.User, "tok") })
	assert.PanicsWithValue(t, "auth.Entry: invalid role Role(0)", func() { auth.Entry("alice", 0, "tok") })
	assert.PanicsWithValue(t, "auth.Entry: empty token", func() { auth.Entry("alice", auth.Admin, "") })
}
