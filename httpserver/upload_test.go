package httpserver_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/httpserver"
	"github.com/remotelab-go/remotelab/topology"
)

// uploadEnv is a server with small upload limits whose every scratch
// location is watched: the spool dir, TMPDIR (where bundles spool) and a
// sentinel dir that nothing may ever write into.
type uploadEnv struct {
	*env
	session  string
	spool    string
	tmp      string
	sentinel string
	beside   []string // what the work root's parent holds
}

var smallLimits = topology.Limits{MaxTopologyBytes: 1024, MaxFileBytes: 4096, MaxTotalBytes: 16384, MaxFiles: 8}

func newUploadEnv(t testing.TB) *uploadEnv {
	root := t.TempDir()
	u := &uploadEnv{
		spool:    filepath.Join(root, "spool"),
		tmp:      filepath.Join(root, "tmp"),
		sentinel: filepath.Join(root, "sentinel"),
	}
	for _, d := range []string{u.spool, u.tmp, u.sentinel} {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	u.env = newEnv(t, withConfig(func(c *httpserver.Config) {
		c.SpoolDir = u.spool
		c.Limits = smallLimits
	}))
	t.Setenv("TMPDIR", u.tmp)
	u.session = u.createSession().SessionID
	u.beside = u.besideWork(t)
	return u
}

// checkContained fails unless the scratch dirs are empty, every file
// under the work root lies inside the current lab working directory, and
// nothing new appeared beside the work root (where a "../.." from a lab
// dir would land).
func (u *uploadEnv) checkContained(t testing.TB) {
	t.Helper()
	for _, d := range []string{u.spool, u.tmp, u.sentinel} {
		ents, err := os.ReadDir(d)
		require.NoError(t, err)
		require.Empty(t, ents, "%s is not empty", d)
	}
	labDir := u.mgr.Status().Dir
	err := filepath.WalkDir(u.work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if labDir != "" && strings.HasPrefix(p, labDir+string(filepath.Separator)) {
			return nil
		}
		return fmt.Errorf("file outside the lab dir: %s", p)
	})
	require.NoError(t, err)
	assert.Equal(t, u.beside, u.besideWork(t))
}

// besideWork lists the work root's directory.
func (u *uploadEnv) besideWork(t testing.TB) []string {
	ents, err := os.ReadDir(filepath.Dir(u.work))
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func repeat(n int, p func(i int) part) []part {
	ps := make([]part, n)
	for i := range ps {
		ps[i] = p(i)
	}
	return ps
}

func TestHostileUploads(t *testing.T) {
	u := newUploadEnv(t)
	okTopo := topo("lab.yml", topoA)
	valid, validType := form(okTopo, extra("configs/r1.cfg", bytes.Repeat([]byte("x"), 3000)))
	cases := []struct {
		name   string
		parts  []part
		body   []byte // raw body instead of parts
		ctype  string
		code   int
		detail string // substring
	}{
		{name: "dotdot", parts: []part{okTopo, extra("../escape", []byte("x"))},
			code: 400, detail: `extra_files "../escape": '..' segment`},
		{name: "inner dotdot", parts: []part{okTopo, extra("a/../../escape", []byte("x"))},
			code: 400, detail: `'..' segment`},
		{name: "absolute", parts: []part{okTopo, extra(filepath.Join(u.sentinel, "pwned"), []byte("x"))},
			code: 400, detail: "absolute path"},
		{name: "backslashes", parts: []part{okTopo, extra(`..\..\escape`, []byte("x"))},
			code: 400, detail: "backslash"},
		{name: "NUL", parts: []part{okTopo, extra("a\x00b", []byte("x"))},
			code: 400, detail: "NUL"},
		{name: "newline", parts: []part{okTopo, extra("a\nb", []byte("x"))},
			code: 400, detail: "control character"},
		{name: "dot segment", parts: []part{okTopo, extra("./x", []byte("x"))},
			code: 400, detail: "'.' segment"},
		{name: "empty segment", parts: []part{okTopo, extra("a//b", []byte("x"))},
			code: 400, detail: "empty segment"},
		{name: "empty name", parts: []part{okTopo, extra("", []byte("x"))},
			code: 400, detail: "empty path"},
		{name: "no filename", parts: []part{okTopo, field(api.PartExtraFiles, "x")},
			code: 400, detail: "extra_files part without a filename"},
		{name: "duplicate", parts: []part{okTopo, extra("a", nil), extra("a", nil)},
			code: 400, detail: `extra_files "a": duplicate`},
		{name: "clash with topology", parts: []part{okTopo, extra("lab.yml", nil)},
			code: 400, detail: `extra_files "lab.yml"`},
		{name: "file and dir clash", parts: []part{okTopo, extra("a", nil), extra("a/b", nil)},
			code: 400, detail: `extra_files "a/b"`},
		{name: "early dotdot", parts: []part{extra("../escape", []byte("x")), okTopo},
			code: 400, detail: `extra_files "../escape": '..' segment`},
		{name: "early duplicate", parts: []part{extra("a", nil), extra("a", nil), okTopo},
			code: 400, detail: `extra_files "a": duplicate`},
		{name: "topology dotdot", parts: []part{topo("../lab.yml", topoA)},
			code: 400, detail: api.DetailBadTopologyName},
		{name: "topology absolute", parts: []part{topo(filepath.Join(u.sentinel, "lab.yml"), topoA)},
			code: 400, detail: api.DetailBadTopologyName},
		{name: "topology backslash", parts: []part{topo(`..\lab.yml`, topoA)},
			code: 400, detail: api.DetailBadTopologyName},
		{name: "topology without filename", parts: []part{field(api.PartTopology, topoA)},
			code: 400, detail: api.DetailBadTopologyName},
		{name: "two topologies", parts: []part{okTopo, okTopo},
			code: 400, detail: "More than one topology part"},
		{name: "topology too large", parts: []part{topo("lab.yml", topoA+"#"+strings.Repeat("x", 1100))},
			code: 413, detail: `topology "lab.yml"`},
		{name: "extra too large", parts: []part{okTopo, extra("big", make([]byte, 4097))},
			code: 413, detail: `extra_files "big" is larger than the limit of 4096 bytes`},
		{name: "early extra too large", parts: []part{extra("big", make([]byte, 4097)), okTopo},
			code: 413, detail: `extra_files "big" is larger than the limit of 4096 bytes`},
		{name: "total too large", parts: append([]part{okTopo},
			repeat(5, func(i int) part { return extra(fmt.Sprint("f", i), make([]byte, 4000)) })...),
			code: 413, detail: "total limit of 16384 bytes"},
		{name: "early total too large",
			parts: repeat(5, func(i int) part { return extra(fmt.Sprint("f", i), make([]byte, 4000)) }),
			code:  413, detail: "total limit of 16384 bytes"},
		{name: "too many files", parts: append([]part{okTopo},
			repeat(9, func(i int) part { return extra(fmt.Sprint("f", i), nil) })...),
			code: 413, detail: "Too many extra_files (limit 8)"},
		{name: "thousands of files", parts: append([]part{okTopo},
			repeat(3000, func(i int) part { return extra(fmt.Sprint("f", i), nil) })...),
			code: 413, detail: "Too many extra_files (limit 8)"},
		{name: "thousands of early files",
			parts: repeat(3000, func(i int) part { return extra(fmt.Sprint("f", i), nil) }),
			code:  413, detail: "Too many extra_files (limit 8)"},
		{name: "one part over the limit", parts: append([]part{okTopo},
			repeat(24, func(i int) part { return field(fmt.Sprint("junk", i), "") })...),
			code: 413, detail: "Too many form parts (limit 24)"},
		{name: "thousands of unknown parts", parts: append([]part{okTopo},
			repeat(5000, func(i int) part { return field(fmt.Sprint("junk", i), "") })...),
			code: 413, detail: "Too many form parts (limit 24)"},
		{name: "body over the limit", parts: []part{okTopo, field("junk", strings.Repeat("x", 2<<20))},
			code: 413, detail: "Request body is larger than the limit"},
		{name: "truncated in extra file", body: valid[:len(valid)-2000], ctype: validType,
			code: 400, detail: "Malformed multipart body"},
		{name: "truncated in topology", body: valid[:200], ctype: validType,
			code: 400, detail: "Malformed multipart body"},
		{name: "truncated before the closing boundary", body: valid[:len(valid)-4], ctype: validType,
			code: 400, detail: "Malformed multipart body"},
		{name: "garbage", body: []byte("\x00\x01garbage"), ctype: validType,
			code: 400, detail: "Malformed multipart body"},
		{name: "no boundary", body: valid, ctype: "multipart/form-data",
			code: 400, detail: "Malformed multipart body"},
		{name: "bad content disposition", body: []byte("--B\r\nContent-Disposition: form-data; name=\"a\"; name=\"b\"\r\n\r\nx\r\n--B--\r\n"),
			ctype: "multipart/form-data; boundary=B", code: 400, detail: "Content-Disposition"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := request{method: http.MethodPost, path: "/lab", session: u.session, body: tc.body, ctype: tc.ctype}
			if tc.parts != nil {
				req = acquireReq(u.session, tc.parts...)
			}
			r := u.send(req)
			require.Equal(t, tc.code, r.code, "%s", r.body)
			assert.Contains(t, r.detail(t), tc.detail)
			u.checkContained(t)
		})
	}
	assert.Empty(t, u.runner.Calls(), "no hostile upload reached the runner")
	_, err := os.Stat(filepath.Join(u.sentinel, "pwned"))
	assert.ErrorIs(t, err, fs.ErrNotExist)

	// The server is fine afterwards, and accepts extra files in any order.
	for _, parts := range [][]part{
		{extra("configs/r1.cfg", []byte("b")), okTopo, extra("configs/r2.cfg", []byte("c"))},
		{okTopo, extra("configs/r1.cfg", []byte("a"))},
	} {
		r := u.acquire(u.session, parts...)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		u.checkContained(t)
		dir := u.mgr.Status().Dir
		got, err := os.ReadFile(filepath.Join(dir, "configs", "r1.cfg"))
		require.NoError(t, err)
		want := parts[0].body
		if parts[0].name == api.PartTopology {
			want = parts[1].body
		}
		assert.Equal(t, want, got)
		require.Equal(t, http.StatusNoContent, u.send(post("/lab/release", u.session)).code)
	}
}

// FuzzUpload throws random names, bodies, part counts and truncations at
// POST /lab: the server never answers 5xx and never writes outside a lab
// working directory.
func FuzzUpload(f *testing.F) {
	u := newUploadEnv(f)
	f.Add("lab.yml", []byte(topoA), "configs/r1.cfg", []byte("hostname r1"), uint8(1), uint16(0))
	f.Add("lab.yml", []byte(topoA), "configs/r1.cfg", []byte("hostname r1"), uint8(0x83), uint16(0))
	f.Add("../lab.yml", []byte(topoA), "../../x", []byte("x"), uint8(3), uint16(0))
	f.Add("lab.yaml", []byte("nodes: 7"), "/etc/passwd", []byte{}, uint8(0), uint16(0))
	f.Add("LAB.YML", []byte(topoB), `a\b`, []byte("x"), uint8(20), uint16(37))
	f.Add("lab.yml", []byte("nodes:\n  r1: {device: frr}\nlinks: [r1-r9]\n"), "a\x00b", []byte("x"), uint8(2), uint16(500))
	f.Fuzz(func(t *testing.T, topoName string, topoBody []byte, extraName string, extraBody []byte, n uint8, cut uint16) {
		var parts []part
		count := int(n & 0x3f)
		early := n&0x80 != 0
		if !early {
			parts = append(parts, topo(topoName, string(topoBody)))
		}
		for i := range count {
			name := extraName
			if i > 0 {
				name = fmt.Sprint(extraName, i)
			}
			parts = append(parts, extra(name, extraBody))
		}
		if early {
			parts = append(parts, topo(topoName, string(topoBody)))
		}
		if n&0x40 != 0 {
			parts = append(parts, field(api.PartReuse, extraName))
		}
		req := acquireReq(u.session, parts...)
		if cut > 0 {
			req.body = req.body[:len(req.body)-int(cut)%len(req.body)]
		}
		r, err := u.sendCtx(t.Context(), req)
		require.NoError(t, err)
		require.Less(t, r.code, 500, "%s", r.body)
		if r.code == http.StatusOK {
			r, err := u.sendCtx(t.Context(), post("/lab/release", u.session))
			require.NoError(t, err)
			require.Equal(t, http.StatusNoContent, r.code)
		}
		u.checkContained(t)
	})
}
