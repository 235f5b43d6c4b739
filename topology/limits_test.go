package topology_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/topology"
)

type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	r.n += int64(len(p))
	return len(p), nil
}

func TestLimits(t *testing.T) {
	small := topology.Limits{MaxFileBytes: 10, MaxTotalBytes: int64(len(topo)) + 15, MaxFiles: 3}
	roomy := topology.Limits{MaxFileBytes: 10, MaxTotalBytes: int64(len(topo)) + 100}
	type add struct {
		path string
		size int
	}
	tests := []struct {
		name   string
		limits topology.Limits
		ok     []add // accepted first
		over   add   // then refused
		want   topology.LimitError
	}{
		{"file exactly at limit, then over by one", roomy,
			[]add{{"a", 10}}, add{"b", 11},
			topology.LimitError{Path: "b", Kind: topology.LimitFileSize, Limit: 10}},
		{"total exactly at limit, then over by one", small,
			[]add{{"a", 10}, {"b", 5}}, add{"c", 1},
			topology.LimitError{Path: "c", Kind: topology.LimitTotalSize, Limit: int64(len(topo)) + 15}},
		{"total crossed by a file under the file limit", small,
			[]add{{"a", 10}}, add{"b", 6},
			topology.LimitError{Path: "b", Kind: topology.LimitTotalSize, Limit: int64(len(topo)) + 15}},
		{"file count", small,
			[]add{{"a", 1}, {"b", 1}, {"c", 1}}, add{"d", 0},
			topology.LimitError{Kind: topology.LimitFileCount, Limit: 3}},
		{"file over both limits reports the file limit", topology.Limits{MaxFileBytes: 10, MaxTotalBytes: int64(len(topo)) + 10},
			nil, add{"a", 11},
			topology.LimitError{Path: "a", Kind: topology.LimitFileSize, Limit: 10}},
	}
	for _, tt := range tests {
		for _, spooled := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/spooled=%v", tt.name, spooled), func(t *testing.T) {
				tmp := privateTmp(t)
				b := newBundle(t, "lab.yml", tt.limits)
				for _, a := range tt.ok {
					if spooled {
						require.NoError(t, b.AddFileFrom(a.path, io.LimitReader(&countingReader{}, int64(a.size))))
					} else {
						require.NoError(t, b.AddFile(a.path, bytes.Repeat([]byte("x"), a.size)))
					}
				}
				_, spooledBefore := spoolFiles(t, tmp)
				before := stateOf(b)
				var err error
				if spooled {
					r := &countingReader{}
					err = b.AddFileFrom(tt.over.path, io.LimitReader(r, int64(tt.over.size)))
					if tt.want.Kind != topology.LimitFileCount {
						allowed := min(tt.limits.MaxFileBytes, tt.limits.MaxTotalBytes-before.size)
						assert.LessOrEqual(t, r.n, allowed+1, "read past the limit")
					}
				} else {
					err = b.AddFile(tt.over.path, bytes.Repeat([]byte("x"), tt.over.size))
				}
				require.ErrorIs(t, err, topology.ErrTooLarge)
				var le *topology.LimitError
				require.ErrorAs(t, err, &le)
				assert.Equal(t, tt.want, *le)
				assert.Equal(t, before, stateOf(b), "bundle changed by a failed add")
				_, spooledAfter := spoolFiles(t, tmp)
				assert.Equal(t, spooledBefore, spooledAfter, "spool file left behind")
			})
		}
	}
}

// TestAddFileFromStopsReading feeds an endless reader: AddFileFrom must
// read exactly one byte more than the file may hold, then give up.
func TestAddFileFromStopsReading(t *testing.T) {
	tests := []struct {
		name    string
		limits  topology.Limits
		already int64
		want    topology.LimitError
	}{
		{"file limit", topology.Limits{MaxFileBytes: 100_000}, 0,
			topology.LimitError{Path: "x", Kind: topology.LimitFileSize, Limit: 100_000}},
		{"total limit", topology.Limits{MaxFileBytes: 100_000, MaxTotalBytes: int64(len(topo)) + 70_000}, 1000,
			topology.LimitError{Path: "x", Kind: topology.LimitTotalSize, Limit: int64(len(topo)) + 70_000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBundle(t, "lab.yml", tt.limits)
			require.NoError(t, b.AddFile("first", make([]byte, tt.already)))
			r := &countingReader{}
			err := b.AddFileFrom("x", r)
			var le *topology.LimitError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, tt.want, *le)
			allowed := min(tt.limits.MaxFileBytes, tt.limits.MaxTotalBytes-b.Size())
			if tt.limits.MaxTotalBytes == 0 {
				allowed = tt.limits.MaxFileBytes
			}
			assert.Equal(t, allowed+1, r.n)
		})
	}
}

func TestTopologyLimit(t *testing.T) {
	n := int64(len(topo))
	_, err := topology.NewBundle("lab.yml", []byte(topo), topology.Limits{MaxTopologyBytes: n})
	require.NoError(t, err)
	_, err = topology.NewBundle("lab.yml", []byte(topo), topology.Limits{MaxTopologyBytes: n - 1})
	var le *topology.LimitError
	require.ErrorAs(t, err, &le)
	assert.ErrorIs(t, err, topology.ErrTooLarge)
	assert.Equal(t, topology.LimitError{Path: "lab.yml", Kind: topology.LimitTopologySize, Limit: n - 1}, *le)

	_, err = topology.NewBundle("lab.yml", []byte(topo), topology.Limits{MaxTotalBytes: n - 1})
	require.ErrorAs(t, err, &le)
	assert.Equal(t, topology.LimitTotalSize, le.Kind)
}

func TestDefaultLimits(t *testing.T) {
	d := topology.DefaultLimits()
	assert.Equal(t, topology.Limits{MaxTopologyBytes: 1 << 20, MaxFileBytes: 32 << 20, MaxTotalBytes: 128 << 20, MaxFiles: 512}, d)

	// The zero Limits means the defaults, field by field.
	big := append([]byte(topo+"#"), bytes.Repeat([]byte("x"), 1<<20-len(topo)-1)...)
	_, err := topology.NewBundle("lab.yml", big, topology.Limits{})
	require.NoError(t, err, "exactly 1 MiB")
	_, err = topology.NewBundle("lab.yml", append(big, 'x'), topology.Limits{MaxFiles: 1})
	var le *topology.LimitError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, int64(1<<20), le.Limit)

	b := newBundle(t, "lab.yml", topology.Limits{MaxTopologyBytes: 1 << 10})
	for i := range 512 {
		require.NoError(t, b.AddFile(fmt.Sprintf("f%d", i), nil))
	}
	assert.ErrorIs(t, b.AddFile("one-more", nil), topology.ErrTooLarge)
	r := &countingReader{}
	err = b.AddFileFrom("f/big", r)
	assert.ErrorIs(t, err, topology.ErrTooLarge)
}

func TestNegativeLimitPanics(t *testing.T) {
	assert.Panics(t, func() {
		_, _ = topology.NewBundle("lab.yml", []byte(topo), topology.Limits{MaxFiles: -1})
	})
}

func TestLimitErrorText(t *testing.T) {
	tests := []struct {
		err  topology.LimitError
		want string
	}{
		{topology.LimitError{Path: "big.bin", Kind: topology.LimitFileSize, Limit: 32 << 20}, `"big.bin": file size over the limit of 32 MiB`},
		{topology.LimitError{Path: "x", Kind: topology.LimitTotalSize, Limit: 3 << 10}, `"x": total size over the limit of 3 KiB`},
		{topology.LimitError{Path: "x", Kind: topology.LimitTotalSize, Limit: 1536}, `"x": total size over the limit of 1536 bytes`},
		{topology.LimitError{Kind: topology.LimitFileCount, Limit: 512}, "too many extra files: the limit is 512"},
	}
	for _, tt := range tests {
		assert.EqualError(t, &tt.err, tt.want)
	}
}

func TestLimitKindString(t *testing.T) {
	for k, want := range map[topology.LimitKind]string{
		topology.LimitTopologySize: "topology size",
		topology.LimitFileSize:     "file size",
		topology.LimitTotalSize:    "total size",
		topology.LimitFileCount:    "file count",
		0:                          "LimitKind(0)",
		42:                         "LimitKind(42)",
	} {
		assert.Equal(t, want, k.String())
	}
}

func TestLimitsDefaultsAndValidate(t *testing.T) {
	d := topology.DefaultLimits()
	assert.Equal(t, d, topology.Limits{}.WithDefaults())
	custom := topology.Limits{MaxFiles: 3}
	got := custom.WithDefaults()
	assert.Equal(t, 3, got.MaxFiles)
	assert.Equal(t, d.MaxTotalBytes, got.MaxTotalBytes)
	require.NoError(t, custom.Validate())
	bad := topology.Limits{MaxFileBytes: -1}
	require.ErrorIs(t, bad.Validate(), topology.ErrNegativeLimit)
	assert.Panics(t, func() { bad.WithDefaults() })
}
