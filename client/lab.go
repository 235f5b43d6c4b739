package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/internal/clock"
	"github.com/remotelab-go/remotelab/topology"
)

// AcquireOption configures one Acquire.
type AcquireOption func(*acquireConfig)

type acquireConfig struct {
	reuse   bool
	sources []extraSource
}

// extraSource is one ExtraFile, ExtraFiles or ExtraBytes option.
type extraSource struct {
	rel  string // bundle path (ExtraFile, ExtraBytes)
	path string // disk file (ExtraFile) or directory (ExtraFiles)
	dir  bool
	data []byte // ExtraBytes
	mem  bool
}

// Reuse says whether a running lab with the same content (topology and
// extra files) may be attached to instead of being started afresh. The
// default is true, as at the HTTP layer: consecutive sessions and tests
// on the same topology share one lab boot. Pass Reuse(false) when a test
// needs devices in their initial state; the server then restarts the lab,
// which it can do only when no other session uses it.
func Reuse(reuse bool) AcquireOption { return func(c *acquireConfig) { c.reuse = reuse } }

// ExtraFile uploads the file at diskPath as the extra file relPath: a
// slash-separated path relative to the topology's directory on the
// server, e.g. "configs/r1.cfg". The file is read when the upload runs.
func ExtraFile(relPath, diskPath string) AcquireOption {
	return func(c *acquireConfig) {
		c.sources = append(c.sources, extraSource{rel: relPath, path: diskPath})
	}
}

// ExtraFiles uploads every regular file under dir, each at its path
// relative to dir. Symbolic links to regular files are followed; links to
// directories and other special files are skipped.
func ExtraFiles(dir string) AcquireOption {
	return func(c *acquireConfig) {
		c.sources = append(c.sources, extraSource{path: dir, dir: true})
	}
}

// ExtraBytes uploads data as the extra file relPath. data must not be
// modified until Acquire returns.
func ExtraBytes(relPath string, data []byte) AcquireOption {
	return func(c *acquireConfig) {
		c.sources = append(c.sources, extraSource{rel: relPath, data: data, mem: true})
	}
}

// upload is a validated POST /lab.
type upload struct {
	name     string // topology file name
	topology []byte
	reuse    bool
	files    []uploadFile // sorted by rel
}

type uploadFile struct {
	rel  string
	path string // read from disk when data is nil
	data []byte
}

// Acquire gives the session the lab described by the topology file at
// topologyPath (plus extra files from opts) and returns its devices and
// whether the server reused a running lab. The topology is uploaded under
// its base name. See AcquireBytes for the details.
func (s *Session) Acquire(ctx context.Context, topologyPath string, opts ...AcquireOption) ([]Device, bool, error) {
	data, err := os.ReadFile(topologyPath)
	if err != nil {
		return nil, false, fmt.Errorf("acquire: read topology: %w", err)
	}
	return s.AcquireBytes(ctx, filepath.Base(topologyPath), data, opts...)
}

// CheckAcquire checks what Acquire(ctx, topologyPath, opts...) checks
// before it sends anything, without a session or a request: that the
// topology file can be read, that its name and content are valid
// (ErrBadRequest, ErrInvalidTopology), and that the extra files exist and
// have safe paths. A program that waits in the queue before it acquires
// calls it first, so that a typo fails at once instead of after the wait.
func CheckAcquire(topologyPath string, opts ...AcquireOption) error {
	data, err := os.ReadFile(topologyPath)
	if err != nil {
		return fmt.Errorf("acquire: read topology: %w", err)
	}
	_, err = prepareUpload(filepath.Base(topologyPath), data, opts)
	return err
}

// prepareUpload applies opts and checks the upload of topology data
// under name, as AcquireBytes and CheckAcquire do before sending.
func prepareUpload(name string, data []byte, opts []AcquireOption) (*upload, error) {
	cfg := acquireConfig{reuse: true}
	for _, o := range opts {
		o(&cfg)
	}
	up, err := newUpload(name, data, cfg)
	if err != nil {
		return nil, fmt.Errorf("acquire %s: %w", name, err)
	}
	return up, nil
}

// AcquireBytes is Acquire for a topology held in memory under the file
// name name, which must pass topology.CheckTopologyName (a plain file
// name ending in .yml or .yaml).
//
// The topology and the extra files' paths are checked before anything is
// sent: a bad name or unsafe path fails with ErrBadRequest, a topology
// that does not parse with ErrInvalidTopology (and the
// *topology.ParseError that says where). The upload is streamed: extra
// files are read from disk while they are sent.
//
// While the server answers that the lab is busy (or that the session is
// not active yet), Acquire retries every poll interval until ctx ends or
// the acquisition timeout passes; the error then matches both the last
// answer (ErrBusy) and context.DeadlineExceeded. A conflict (the session
// holds another lab; ErrConflict) is never retried. The server keeps the
// session's reference until Release or Close.
func (s *Session) AcquireBytes(ctx context.Context, name string, topologyData []byte, opts ...AcquireOption) ([]Device, bool, error) {
	up, err := prepareUpload(name, topologyData, opts)
	if err != nil {
		return nil, false, err
	}
	if s.closing.Load() {
		return nil, false, fmt.Errorf("acquire %s: %w", name, ErrClosed)
	}
	actx := ctx
	if t := s.c.cfg.acquisitionTimeout; t > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	start := time.Now()
	var busy error // the last busy answer
	for attempts := 1; ; attempts++ {
		ans, err := s.post(actx, up)
		switch {
		case err == nil:
			devices := fromAPIDevices(ans.Devices)
			s.log.Info("Lab up", "devices", len(devices), "reused", ans.Reused,
				"topology", name, "took", time.Since(start).Round(time.Millisecond))
			return devices, ans.Reused, nil
		case errors.Is(err, ErrBusy) || errors.Is(err, ErrNotActive):
			level := slog.LevelDebug
			if busy == nil {
				level = slog.LevelInfo
			}
			busy = err
			s.log.Log(actx, level, "Lab busy; retrying", "topology", name, "every", s.c.cfg.pollInterval, "detail", detailOf(err))
		case busy != nil && actx.Err() != nil:
			// The time ran out as a retry began.
			attempts--
		default:
			return nil, false, fmt.Errorf("acquire %s: %w", name, err)
		}
		if clock.Sleep(actx, s.c.cfg.pollInterval) != nil {
			return nil, false, fmt.Errorf("acquire %s: gave up after %d attempts in %v: %w: %w",
				name, attempts, time.Since(start).Round(time.Millisecond), busy, context.Cause(actx))
		}
	}
}

// newUpload checks the request and resolves the extra files.
func newUpload(name string, data []byte, cfg acquireConfig) (*upload, error) {
	if err := topology.CheckTopologyName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if _, err := topology.Parse(name, data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTopology, err)
	}
	up := &upload{name: name, topology: data, reuse: cfg.reuse}
	for _, src := range cfg.sources {
		switch {
		case src.mem:
			up.files = append(up.files, uploadFile{rel: src.rel, data: src.data})
		case src.dir:
			files, err := walkExtraDir(src.path)
			if err != nil {
				return nil, err
			}
			up.files = append(up.files, files...)
		default:
			fi, err := os.Stat(src.path)
			if err != nil {
				return nil, fmt.Errorf("extra file %q: %w", src.rel, err)
			}
			if !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("extra file %q: %s is not a regular file", src.rel, src.path)
			}
			up.files = append(up.files, uploadFile{rel: src.rel, path: src.path})
		}
	}
	slices.SortFunc(up.files, func(a, b uploadFile) int { return strings.Compare(a.rel, b.rel) })
	for i, f := range up.files {
		if err := topology.ValidatePath(f.rel); err != nil {
			return nil, fmt.Errorf("%w: extra file: %w", ErrBadRequest, err)
		}
		if i > 0 && up.files[i-1].rel == f.rel {
			return nil, fmt.Errorf("%w: extra file %q given twice", ErrBadRequest, f.rel)
		}
		if f.rel == name {
			return nil, fmt.Errorf("%w: extra file %q has the topology's name", ErrBadRequest, f.rel)
		}
	}
	return up, nil
}

// walkExtraDir lists the regular files under dir.
func walkExtraDir(dir string) ([]uploadFile, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("extra files: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("extra files: %s is not a directory", dir)
	}
	// WalkDir does not follow a root that is a symbolic link; with a
	// trailing separator the root is the directory it points to.
	root := dir + string(filepath.Separator)
	var files []uploadFile
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type().IsRegular():
		case d.Type()&fs.ModeSymlink != 0:
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		default:
			return nil // directories are walked; special files skipped
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files = append(files, uploadFile{rel: filepath.ToSlash(rel), path: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("extra files in %s: %w", dir, err)
	}
	return files, nil
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func partHeader(field, filename, contentType string) textproto.MIMEHeader {
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`,
		quoteEscaper.Replace(field), quoteEscaper.Replace(filename)))
	h.Set("Content-Type", contentType)
	return h
}

// write writes the multipart body: reuse first (so a streaming server
// knows it before the files), then the topology, then the extra files.
func (u *upload) write(mw *multipart.Writer) error {
	if err := mw.WriteField(api.PartReuse, strconv.FormatBool(u.reuse)); err != nil {
		return err
	}
	w, err := mw.CreatePart(partHeader(api.PartTopology, u.name, "application/x-yaml"))
	if err != nil {
		return err
	}
	if _, err := w.Write(u.topology); err != nil {
		return err
	}
	for _, f := range u.files {
		w, err := mw.CreatePart(partHeader(api.PartExtraFiles, f.rel, "application/octet-stream"))
		if err != nil {
			return err
		}
		if f.path == "" {
			_, err = w.Write(f.data)
		} else {
			err = copyFile(w, f.path)
		}
		if err != nil {
			return err
		}
	}
	return mw.Close()
}

// errLocalRead marks an upload that failed because a local file could not
// be read.
type errLocalRead struct{ err error }

func (e errLocalRead) Error() string { return e.err.Error() }
func (e errLocalRead) Unwrap() error { return e.err }

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return errLocalRead{err}
	}
	defer f.Close()
	if _, err := io.Copy(w, readerOnly{f}); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return errLocalRead{err}
		}
		return err
	}
	return nil
}

// readerOnly hides *os.File's WriterTo so a read error stays distinct
// from a write error.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// post sends one POST /lab, streaming the body through a pipe.
func (s *Session) post(ctx context.Context, up *upload) (api.AcquireResponse, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	written := make(chan error, 1)
	go func() {
		err := up.write(mw)
		pw.CloseWithError(err)
		written <- err
	}()
	var ans api.AcquireResponse
	_, err := s.call(ctx, request{
		method:      http.MethodPost,
		path:        "/lab",
		body:        pr,
		contentType: mw.FormDataContentType(),
	}, &ans)
	pr.Close() // unblocks the writer if the server stopped reading
	werr := <-written
	var lr errLocalRead
	if errors.As(werr, &lr) {
		return ans, fmt.Errorf("read extra file: %w", lr.err)
	}
	return ans, err
}

// Release drops one of the session's references to the lab. The lab stays
// up, idle, so the next acquirer of the same content gets it at once. It
// is not an error when there is no lab or the server no longer knows the
// session (its references went with it).
func (s *Session) Release(ctx context.Context) error {
	_, err := s.call(ctx, request{
		method:  http.MethodPost,
		path:    "/lab/release",
		timeout: s.c.cfg.requestTimeout,
	}, nil)
	switch {
	case err == nil:
		s.log.Info("Lab released")
		return nil
	case errors.Is(err, ErrNoLab):
		return nil
	case errors.Is(err, ErrNotFound):
		s.log.Warn("Release: the server no longer knows the session; its references are gone", "err", err)
		return nil
	}
	return fmt.Errorf("release lab: %w", err)
}

// Destroy tears the lab down now. Without force it fails with ErrConflict
// while any session holds a reference. It is not an error when there is
// no lab. It blocks until the teardown finished, bounded by ctx and the
// acquisition timeout.
func (s *Session) Destroy(ctx context.Context, force bool) error {
	_, err := s.call(ctx, request{
		method:  http.MethodDelete,
		path:    "/lab",
		query:   url.Values{"force": {strconv.FormatBool(force)}},
		timeout: s.c.cfg.acquisitionTimeout,
	}, nil)
	if err != nil {
		return fmt.Errorf("destroy lab: %w", err)
	}
	s.log.Info("Lab destroyed", "force", force)
	return nil
}

// LabStatus is the server's view of the lab (GET /lab).
type LabStatus struct {
	Running     bool     // a lab is up (in use or idle)
	Topology    string   // the running topology as the server names it ("" if none)
	RefCount    int      // references held by all sessions
	Devices     []Device // the running lab's devices
	Fingerprint string   // content identity of the lab ("" from the original server)
	State       string   // e.g. "running", "idle", "starting" ("" from the original server)
}

// Status returns the lab's state.
func (s *Session) Status(ctx context.Context) (LabStatus, error) {
	var st api.LabStatus
	_, err := s.call(ctx, request{method: http.MethodGet, path: "/lab", timeout: s.c.cfg.requestTimeout}, &st)
	if err != nil {
		return LabStatus{}, fmt.Errorf("lab status: %w", err)
	}
	out := LabStatus{
		Running:     st.Running,
		RefCount:    st.RefCount,
		Devices:     fromAPIDevices(st.Devices),
		Fingerprint: st.Fingerprint,
		State:       st.State,
	}
	if st.Topology != nil {
		out.Topology = *st.Topology
	}
	return out, nil
}

// Devices returns the running lab's devices, or an error matching ErrNoLab.
func (s *Session) Devices(ctx context.Context) ([]Device, error) {
	var devs []api.Device
	_, err := s.call(ctx, request{method: http.MethodGet, path: "/lab/devices", timeout: s.c.cfg.requestTimeout}, &devs)
	if err != nil {
		return nil, fmt.Errorf("lab devices: %w", err)
	}
	return fromAPIDevices(devs), nil
}

func detailOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return err.Error()
}
