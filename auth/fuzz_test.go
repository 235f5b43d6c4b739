package auth_test

import (
	"testing"

	"github.com/remotelab-go/remotelab/auth"
)

// FuzzParse checks that Parse never panics and that a table it accepts
// keeps its promises: Len counts the entries and no empty token is known.
func FuzzParse(f *testing.F) {
	seeds := []string{
		fill(validFile),
		fileA,
		"tokens: []\n",
		"tokens:\n",
		"",
		"tokens: [\n",
		"- a\n",
		"tokens:\n  - &e {name: a, role: user, sha256: " + hashA + "}\n  - *e\n",
		"tokens: &t [*t]\n",
		"tokens:\n  - {name: \"\\x07\", role: admin, sha256: " + hashA + "}\n",
		"tokens:\n  - <<: *x\n",
		"tokens: !!binary aGVsbG8=\n",
		"? [a]\n: b\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		table, err := auth.Parse(data)
		if err != nil {
			if table != nil {
				t.Fatalf("Parse returned a table and the error %v", err)
			}
			return
		}
		if table.Len() < 0 {
			t.Fatalf("Len() = %d", table.Len())
		}
		if id, ok := table.Lookup(""); ok {
			t.Fatalf("empty token known as %v", id)
		}
	})
}

// FuzzEntry checks that Parse reads back, unchanged, every entry that
// Entry writes for a name CheckName accepts.
func FuzzEntry(f *testing.F) {
	for _, s := range []string{"alice", "yes", "a: b", "#x", "- x", "'\"", "Zoë", "x  y", "%"} {
		f.Add(s, "rlab_token")
	}
	f.Fuzz(func(t *testing.T, name, token string) {
		if auth.CheckName(name) != nil || token == "" {
			return
		}
		data := "tokens:\n" + auth.Entry(name, auth.Admin, token)
		table, err := auth.Parse([]byte(data))
		if err != nil {
			t.Fatalf("Parse of Entry(%q): %v\n%s", name, err, data)
		}
		id, ok := table.Lookup(token)
		if !ok || id != (auth.Identity{Name: name, Role: auth.Admin}) {
			t.Fatalf("Lookup after Entry(%q) = %v, %v\n%s", name, id, ok, data)
		}
	})
}
