package topology_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/topology"
)

// topologyNameTests pin the one topology-name rule (CheckTopologyName):
// msg is the error text, "" for an accepted name.
var topologyNameTests = []struct{ name, msg string }{
	{"lab.yml", ""},
	{"lab.yaml", ""},
	{"LAB.YML", ""},
	{"x.YaMl", ""},
	{"my lab.yml", ""},
	{".hidden.yml", ""},
	{"a.b.yml", ""},
	{"..yml", ""},
	{"ü.yml", ""},
	{"C:lab.yml", ""},
	{strings.Repeat("x", 251) + ".yml", ""},
	{"lab.txt", `topology must be a .yml or .yaml file, got "lab.txt"`},
	{"lab", `topology must be a .yml or .yaml file, got "lab"`},
	{"lab.yml.bak", `topology must be a .yml or .yaml file, got "lab.yml.bak"`},
	{"lab.yml ", `topology must be a .yml or .yaml file, got "lab.yml "`},
	{"labyml", `topology must be a .yml or .yaml file, got "labyml"`},
	{"lab.ym", `topology must be a .yml or .yaml file, got "lab.ym"`},
	{".yml", `topology must be a .yml or .yaml file with a name before the extension, got ".yml"`},
	{".YAML", `topology must be a .yml or .yaml file with a name before the extension, got ".YAML"`},
	{"", `topology must be a .yml or .yaml file with a safe name, got "": empty path`},
	{".", `topology must be a .yml or .yaml file with a safe name, got ".": '.' segment`},
	{"..", `topology must be a .yml or .yaml file with a safe name, got "..": '..' segment`},
	{"dir/lab.yml", `topology must be a .yml or .yaml file without a directory, got "dir/lab.yml"`},
	{"/lab.yml", `topology must be a .yml or .yaml file without a directory, got "/lab.yml"`},
	{"lab.yml/", `topology must be a .yml or .yaml file without a directory, got "lab.yml/"`},
	{`dir\lab.yml`, `topology must be a .yml or .yaml file without a directory, got "dir\\lab.yml"`},
	{"../lab.yml", `topology must be a .yml or .yaml file without a directory, got "../lab.yml"`},
	{"lab\x00.yml", `topology must be a .yml or .yaml file with a safe name, got "lab\x00.yml": NUL character`},
	{"lab\n.yml", `topology must be a .yml or .yaml file with a safe name, got "lab\n.yml": control character`},
	{"lab\xff.yml", `topology must be a .yml or .yaml file with a safe name, got "lab\xff.yml": invalid UTF-8`},
	{strings.Repeat("x", 252) + ".yml", `topology must be a .yml or .yaml file with a safe name, got "` +
		strings.Repeat("x", 252) + `.yml": segment longer than 255 bytes`},
}

func TestCheckTopologyName(t *testing.T) {
	for _, tt := range topologyNameTests {
		err := topology.CheckTopologyName(tt.name)
		if tt.msg == "" {
			assert.NoError(t, err, "%q", tt.name)
			continue
		}
		assert.ErrorIs(t, err, topology.ErrBadTopologyName, "%q", tt.name)
		assert.NotErrorIs(t, err, topology.ErrUnsafePath, "%q", tt.name)
		assert.EqualError(t, err, tt.msg)
	}
}

// TestNewBundleChecksTopologyName: NewBundle applies exactly that rule.
func TestNewBundleChecksTopologyName(t *testing.T) {
	for _, tt := range topologyNameTests {
		b, err := topology.NewBundle(tt.name, []byte(topo), topology.Limits{})
		if tt.msg == "" {
			if assert.NoError(t, err, "%q", tt.name) {
				assert.Equal(t, tt.name, b.TopologyName())
				b.Close()
			}
			continue
		}
		assert.Nil(t, b)
		assert.EqualError(t, err, tt.msg)
	}
}

var pathTests = []struct {
	path   string
	reason string // "" for a safe path
}{
	{"a", ""},
	{"a/b/c.txt", ""},
	{"a..b", ""},
	{"..a", ""},
	{"a/...", ""},
	{".hidden", ""},
	{"a/.b", ""},
	{"a b/c d", ""},
	{"ü/ñ.txt", ""},
	{"C:", ""},
	{strings.Repeat("x", 255), ""},
	{strings.Repeat("d/", 511) + "xy", ""},
	{"", "empty path"},
	{"/a", "absolute path"},
	{"/", "absolute path"},
	{"a/", "empty segment"},
	{"a//b", "empty segment"},
	{".", "'.' segment"},
	{"./a", "'.' segment"},
	{"a/.", "'.' segment"},
	{"a/./b", "'.' segment"},
	{"..", "'..' segment"},
	{"../a", "'..' segment"},
	{"a/..", "'..' segment"},
	{"a/../b", "'..' segment"},
	{`a\b`, "backslash"},
	{`\a`, "backslash"},
	{`..\a`, "backslash"},
	{"a\x00b", "NUL character"},
	{"a\nb", "control character"},
	{"a\tb", "control character"},
	{"\x1b[1m", "control character"},
	{"a\x7f", "control character"},
	{"a\u0085b", "control character"},
	{"a\xffb", "invalid UTF-8"},
	{strings.Repeat("x", 256), "segment longer than 255 bytes"},
	{strings.Repeat("d/", 511) + "xyz", "longer than 1024 bytes"},
}

func TestValidatePath(t *testing.T) {
	for _, tt := range pathTests {
		err := topology.ValidatePath(tt.path)
		if tt.reason == "" {
			assert.NoError(t, err, "%q", tt.path)
			continue
		}
		require.ErrorIs(t, err, topology.ErrUnsafePath, "%q", tt.path)
		var pe *topology.PathError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, tt.path, pe.Path)
		assert.Equal(t, tt.reason, pe.Reason, "%q", tt.path)
	}
}

func TestPathErrorText(t *testing.T) {
	err := topology.ValidatePath("../etc/passwd")
	assert.EqualError(t, err, `unsafe path "../etc/passwd": '..' segment`)
}

func FuzzValidatePath(f *testing.F) {
	for _, tt := range pathTests {
		f.Add(tt.path)
	}
	for _, s := range []string{"a/b/../c", "a/./b", "//", "a\u2028b", "\u202e", "a/\x00", "~/x", "a:b", "C:\\x"} {
		f.Add(s)
	}
	root := filepath.FromSlash("/srv/lab/work")
	f.Fuzz(func(t *testing.T, p string) {
		err := topology.ValidatePath(p)
		if err != nil {
			var pe *topology.PathError
			if !errors.As(err, &pe) || !errors.Is(err, topology.ErrUnsafePath) || pe.Path != p || pe.Reason == "" {
				t.Fatalf("bad error %v for %q", err, p)
			}
			return
		}
		if !filepath.IsLocal(p) {
			t.Fatalf("accepted non-local %q", p)
		}
		if filepath.Clean(p) != p {
			t.Fatalf("accepted unclean %q", p)
		}
		if !utf8.ValidString(p) || strings.ContainsRune(p, '\\') {
			t.Fatalf("accepted %q", p)
		}
		for _, r := range p {
			if unicode.IsControl(r) {
				t.Fatalf("accepted control character in %q", p)
			}
		}
		joined := filepath.Join(root, p)
		if !strings.HasPrefix(joined, root+string(filepath.Separator)) {
			t.Fatalf("%q joined to %s escapes it: %s", p, root, joined)
		}
		if rel, err := filepath.Rel(root, joined); err != nil || rel != p {
			t.Fatalf("%q does not round-trip: %q, %v", p, rel, err)
		}
	})
}
