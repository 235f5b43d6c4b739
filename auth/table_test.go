package auth_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/auth"
)

// Tokens of the test tables and their hashes.
var (
	tokAlice = "rlab_alice-token"
	tokBob   = "rlab_bob-token"
	tokCarol = "rlab_carol-token"
	hashA    = auth.Hash(tokAlice)
	hashB    = auth.Hash(tokBob)
	hashC    = auth.Hash(tokCarol)
)

const validFile = `# remotelab tokens
tokens:
  - name: alice
    role: user
    sha256: %A
  - name: Bob the Builder
    role: ADMIN
    sha256: %B
  - {name: carol, role: Viewer, sha256: %C}
`

// fill replaces %A, %B and %C in s with the hashes of the test tokens, and
// %a with alice's hash in upper case.
func fill(s string) string {
	return strings.NewReplacer("%A", hashA, "%B", hashB, "%C", hashC, "%a", strings.ToUpper(hashA)).Replace(s)
}

func TestParseLookup(t *testing.T) {
	table, err := auth.Parse([]byte(fill(validFile)))
	require.NoError(t, err)
	assert.Equal(t, 3, table.Len())

	tests := []struct {
		token string
		want  auth.Identity
		ok    bool
	}{
		{tokAlice, auth.Identity{Name: "alice", Role: auth.User}, true},
		{tokBob, auth.Identity{Name: "Bob the Builder", Role: auth.Admin}, true},
		{tokCarol, auth.Identity{Name: "carol", Role: auth.Viewer}, true},
		{"rlab_unknown", auth.Identity{}, false},
		{"", auth.Identity{}, false},
		{hashA, auth.Identity{}, false}, // the hash is not the token
		{tokAlice + " ", auth.Identity{}, false},
		{strings.ToUpper(tokAlice), auth.Identity{}, false},
	}
	for _, tt := range tests {
		id, ok := table.Lookup(tt.token)
		assert.Equal(t, tt.ok, ok, "%q", tt.token)
		assert.Equal(t, tt.want, id, "%q", tt.token)
	}
}

func TestParseHashAnyCase(t *testing.T) {
	table, err := auth.Parse([]byte(fill("tokens:\n  - name: alice\n    role: user\n    sha256: %a\n")))
	require.NoError(t, err)
	id, ok := table.Lookup(tokAlice)
	require.True(t, ok)
	assert.Equal(t, auth.Identity{Name: "alice", Role: auth.User}, id)
}

func TestParseEmptyList(t *testing.T) {
	for _, data := range []string{"tokens: []\n", "tokens:\n", "tokens: ~\n", "# none yet\ntokens: [] # later\n"} {
		table, err := auth.Parse([]byte(data))
		require.NoError(t, err, "%q", data)
		assert.Equal(t, 0, table.Len(), "%q", data)
		_, ok := table.Lookup(tokAlice)
		assert.False(t, ok)
		_, ok = table.Lookup("")
		assert.False(t, ok)
	}
}

func TestParseAliases(t *testing.T) {
	table, err := auth.Parse([]byte(fill("tokens:\n  - name: &n alice\n    role: &r user\n    sha256: %A\n  - {name: bob, role: *r, sha256: %B}\n")))
	require.NoError(t, err)
	id, ok := table.Lookup(tokBob)
	require.True(t, ok)
	assert.Equal(t, auth.Identity{Name: "bob", Role: auth.User}, id)
}

// entry returns one tokens entry in flow style.
func entry(name, role, sum string) string {
	return "  - {name: " + name + ", role: " + role + ", sha256: " + sum + "}\n"
}

func TestParseErrors(t *testing.T) {
	short := hashA[:63]
	tests := []struct {
		name string
		data string
		want []string // substrings of the error
	}{
		{"empty file", "", []string{"auth file is empty"}},
		{"only a comment", "# nothing\n", []string{"auth file is empty"}},
		{"not YAML", "tokens: [\n", []string{"invalid YAML"}},
		{"tab indentation", "tokens:\n\t- name: alice\n", []string{"invalid YAML", "line 2"}},
		{"two documents", "tokens: []\n---\ntokens: []\n", []string{"line 2", "single YAML document"}},
		{"root is a list", "- name: alice\n", []string{"line 1", "must be a mapping with a tokens list", "a list"}},
		{"root is a scalar", "alice\n", []string{"line 1", "must be a mapping", `"alice"`}},
		{"root is null", "---\n", []string{"must be a mapping", "nothing"}},
		{"tokens missing", "{}\n", []string{"line 1", "no tokens list"}},
		{"unknown top-level key", "tokens: []\nusers: []\n", []string{"line 2", `unknown key "users"`, "the only key is tokens"}},
		{"misspelled tokens", "token:\n" + entry("alice", "user", hashA), []string{"line 1", `unknown key "token"`}},
		{"tokens twice", "tokens: []\ntokens: []\n", []string{"line 2", "tokens appears twice"}},
		{"tokens a mapping", "tokens:\n  alice: user\n", []string{"line 2", "tokens must be a list", "a mapping"}},
		{"tokens a string", "tokens: alice\n", []string{"line 1", "tokens must be a list", `"alice"`}},
		{"entry a string", "tokens:\n  - alice\n", []string{"line 2", "tokens entry 1 must be a mapping", `"alice"`}},
		{"entry a list", "tokens:\n" + entry("alice", "user", hashA) + "  - [bob]\n", []string{"line 3", "tokens entry 2 must be a mapping", "a list"}},
		{"entry null", "tokens:\n  -\n", []string{"tokens entry 1 must be a mapping", "nothing"}},
		{"unknown entry key", "tokens:\n  - name: alice\n    role: user\n    rol: admin\n    sha256: " + hashA + "\n",
			[]string{"line 4", `tokens entry 1 ("alice")`, `unknown key "rol"`, "known: name, role, sha256"}},
		{"token in clear", "tokens:\n  - {name: alice, role: user, token: rlab_x}\n", []string{`tokens entry 1 ("alice")`, `unknown key "token"`}},
		{"merge key", "tokens:\n  - <<: {role: user}\n    name: alice\n    sha256: " + hashA + "\n", []string{`tokens entry 1 ("alice")`, `unknown key "<<"`}},
		{"entry key twice", "tokens:\n  - name: alice\n    role: user\n    role: admin\n    sha256: " + hashA + "\n",
			[]string{"line 4", `tokens entry 1 ("alice")`, "role appears twice"}},
		{"name missing", "tokens:\n" + entry("alice", "user", hashA) + "  - {role: user, sha256: " + hashB + "}\n",
			[]string{"line 3", "tokens entry 2:", "name is missing"}},
		{"name null", "tokens:\n  - {name: ~, role: user, sha256: " + hashA + "}\n", []string{"tokens entry 1:", "name is missing"}},
		{"name empty", "tokens:\n  - {name: '', role: user, sha256: " + hashA + "}\n", []string{"tokens entry 1:", "name is empty"}},
		{"name a list", "tokens:\n  - {name: [a], role: user, sha256: " + hashA + "}\n", []string{"tokens entry 1:", "name must be a string", "a list"}},
		{"name too long", "tokens:\n" + entry(strings.Repeat("a", 129), "user", hashA), []string{"tokens entry 1", "longer than 128 characters"}},
		{"name unprintable", "tokens:\n" + entry(`"al\x07ice"`, "user", hashA), []string{`tokens entry 1 ("al\aice")`, "unprintable character U+0007"}},
		{"name with newline", "tokens:\n" + entry(`"al\nice"`, "user", hashA), []string{`tokens entry 1 ("al\nice")`, "unprintable character U+000A"}},
		{"name with spaces around", "tokens:\n" + entry(`" alice"`, "user", hashA), []string{"tokens entry 1", "leading or trailing spaces"}},
		{"name with percent", "tokens:\n" + entry(`"100%d"`, "root", hashA), []string{`tokens entry 1 ("100%d")`, `unknown role "root"`}},
		{"name repeated", "tokens:\n" + entry("alice", "user", hashA) + entry("bob", "user", hashB) + entry("alice", "admin", hashC),
			[]string{"line 4", `tokens entry 3 ("alice")`, "name already used by entry 1"}},
		{"role missing", "tokens:\n  - {name: alice, sha256: " + hashA + "}\n", []string{`tokens entry 1 ("alice")`, "role is missing"}},
		{"role unknown", "tokens:\n" + entry("alice", "user", hashA) + entry("bob", "superuser", hashB),
			[]string{"line 3", `tokens entry 2 ("bob")`, `unknown role "superuser"`, "viewer, user or admin"}},
		{"role a number", "tokens:\n" + entry("alice", "1", hashA), []string{`tokens entry 1 ("alice")`, `unknown role "1"`}},
		{"role a mapping", "tokens:\n  - {name: alice, role: {a: b}, sha256: " + hashA + "}\n", []string{`tokens entry 1 ("alice")`, "role must be a string", "a mapping"}},
		{"sha256 missing", "tokens:\n  - {name: alice, role: user}\n", []string{`tokens entry 1 ("alice")`, "sha256 is missing"}},
		{"sha256 short", "tokens:\n" + entry("alice", "user", short), []string{`tokens entry 1 ("alice")`, "sha256 must be 64 hex digits, found 63 characters"}},
		{"sha256 long", "tokens:\n" + entry("alice", "user", hashA+"0"), []string{`tokens entry 1 ("alice")`, "found 65 characters"}},
		{"sha256 not hex", "tokens:\n" + entry("alice", "user", "g"+hashA[1:]), []string{`tokens entry 1 ("alice")`, "sha256 must be 64 hex digits", "invalid byte"}},
		{"sha256 not ASCII", "tokens:\n" + entry("alice", "user", strings.Repeat("é", 64)), []string{`tokens entry 1 ("alice")`, "sha256 must be 64 hex digits", "invalid byte"}},
		{"sha256 with a space", "tokens:\n" + entry("alice", "user", `"`+hashA[:31]+" "+hashA[32:]+`"`), []string{`tokens entry 1 ("alice")`, "invalid byte"}},
		{"sha256 is the token", "tokens:\n" + entry("alice", "user", tokAlice), []string{`tokens entry 1 ("alice")`, "sha256 must be 64 hex digits"}},
		{"sha256 of the empty token", "tokens:\n" + entry("alice", "user", auth.Hash("")), []string{`tokens entry 1 ("alice")`, "hash of the empty token"}},
		{"sha256 repeated", "tokens:\n" + entry("alice", "user", hashA) + entry("bob", "admin", strings.ToUpper(hashA)),
			[]string{"line 3", `tokens entry 2 ("bob")`, `sha256 already used by entry 1 ("alice")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := auth.Parse([]byte(tt.data))
			require.Error(t, err, tt.data)
			assert.Nil(t, table)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}
