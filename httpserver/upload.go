package httpserver

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"time"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/topology"
)

// Multipart framing allowed on top of Limits.MaxTotalBytes: a fixed part
// plus some per allowed part (boundaries, part headers, file names).
const (
	uploadOverhead        = 1 << 20
	uploadOverheadPerPart = 2 << 10
	// extraParts is how many parts besides extra files a form may have
	// (topology, reuse and a few unknown fields, which are ignored).
	extraParts = 16
	// maxReuseBytes bounds the value of the reuse field.
	maxReuseBytes = 64
)

// upload is the state of one POST /lab body being read.
type upload struct {
	s      *Server
	body   *bodyReader
	bundle *topology.Bundle
	// early holds extra files that arrived before the topology part; they
	// are spooled to SpoolDir and moved into the bundle once it exists.
	early      []earlyFile
	earlyBytes int64
	reuse      bool
	issues     []api.ValidationIssue
}

type earlyFile struct {
	path string
	f    *os.File
}

// readUpload streams the multipart body of POST /lab into a bundle. The
// whole body is bounded by http.MaxBytesReader and must arrive within the
// upload timeout (408 otherwise); the topology is read into memory
// (bounded by MaxTopologyBytes), extra files are streamed to disk. While
// bytes arrive the session is refreshed, so a client sending a large
// upload does not expire, and one that stalls does; when the session ends
// the read stops. On success the caller owns (and must Close) the bundle.
func (s *Server) readUpload(w http.ResponseWriter, r *http.Request, op *broker.Op) (*topology.Bundle, bool, *reqError) {
	lim := s.limits
	maxParts := lim.MaxFiles + extraParts
	maxBody := lim.MaxTotalBytes + uploadOverhead + int64(maxParts)*uploadOverheadPerPart
	rc := http.NewResponseController(w)
	// Connections that cannot take deadlines (in-memory test transports)
	// read without one.
	_ = rc.SetReadDeadline(time.Now().Add(s.uploadTimeout))
	stop := context.AfterFunc(op.Context(), func() { _ = rc.SetReadDeadline(time.Now()) })
	defer stop()

	u := &upload{s: s, reuse: true}
	u.body = &bodyReader{r: http.MaxBytesReader(unwrapWriter(w), r.Body, maxBody), touch: op.Touch}
	r.Body = u.body
	rerr := u.read(r, maxParts)
	// The upload is over, complete or cut: the session's clock restarts
	// now (SPEC §8), not at the last bytes that arrived, which may be
	// the whole upload timeout ago.
	op.Touch()
	u.dropEarly()
	if rerr == nil {
		_ = rc.SetReadDeadline(time.Time{})
		return u.bundle, u.reuse, nil
	}
	if u.bundle != nil {
		_ = u.bundle.Close()
	}
	switch {
	case op.Context().Err() != nil:
		rerr = &reqError{gone: true}
	case u.body.timedOut:
		rerr = errorf(http.StatusRequestTimeout, "%s after %v: the whole request body must arrive within the server's upload timeout",
			api.DetailUploadTimeout, s.uploadTimeout)
	}
	return nil, false, rerr
}

func (u *upload) read(r *http.Request, maxParts int) *reqError {
	mr, err := r.MultipartReader()
	if errors.Is(err, http.ErrNotMultipart) {
		// Not a form at all: the topology is missing, as FastAPI said.
		return invalid(missing("body", api.PartTopology))
	}
	if err != nil {
		return errorf(http.StatusBadRequest, "Malformed multipart body: %s", api.Clip(err.Error()))
	}
	for n := 1; ; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u.bodyError(err)
		}
		if n > maxParts {
			return errorf(http.StatusRequestEntityTooLarge, "Too many form parts (limit %d)", maxParts)
		}
		rerr := u.part(p)
		p.Close()
		if rerr != nil {
			return rerr
		}
	}
	if u.bundle == nil {
		u.issues = append([]api.ValidationIssue{missing("body", api.PartTopology)}, u.issues...)
	}
	if len(u.issues) > 0 {
		return invalid(u.issues...)
	}
	return nil
}

// part handles one form part.
func (u *upload) part(p *multipart.Part) *reqError {
	disp, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil || disp != "form-data" {
		return errorf(http.StatusBadRequest, "Malformed Content-Disposition of a form part")
	}
	// Not p.FileName(): it keeps only the base name, and here the
	// client's name is the file's relative path.
	filename, hasFile := params["filename"]
	switch params["name"] {
	case api.PartTopology:
		return u.topologyPart(p, filename, hasFile)
	case api.PartReuse:
		v, err := io.ReadAll(io.LimitReader(p, maxReuseBytes+1))
		if err != nil {
			return u.bodyError(err)
		}
		if b, ok := api.ParseBool(string(v)); ok {
			u.reuse = b
		} else {
			u.issues = append(u.issues, badBool(string(v), "body", api.PartReuse))
		}
	case api.PartExtraFiles:
		return u.extraPart(p, filename, hasFile)
	}
	return nil // unknown parts are skipped
}

func (u *upload) topologyPart(p io.Reader, name string, hasFile bool) *reqError {
	if u.bundle != nil {
		return errorf(http.StatusBadRequest, "More than one topology part")
	}
	if !hasFile || topology.CheckTopologyName(name) != nil {
		return fail(http.StatusBadRequest, api.DetailBadTopologyName)
	}
	limit := u.s.limits.MaxTopologyBytes
	data, err := io.ReadAll(io.LimitReader(p, limit+1))
	if err != nil {
		return u.bodyError(err)
	}
	if int64(len(data)) > limit {
		return errorf(http.StatusRequestEntityTooLarge,
			"topology %q is larger than the limit of %d bytes", api.Clip(name), limit)
	}
	b, err := topology.NewBundle(name, data, u.s.limits)
	if err != nil {
		var pe *topology.ParseError
		if errors.As(err, &pe) {
			return fail(http.StatusUnprocessableEntity, api.Clip(pe.Error()))
		}
		return u.bundleError(api.PartTopology, err)
	}
	u.bundle = b
	for i := range u.early {
		e := &u.early[i]
		if _, err := e.f.Seek(0, io.SeekStart); err != nil {
			return errorf(http.StatusInternalServerError, "spool extra file: %v", err)
		}
		if err := b.AddFileFrom(e.path, e.f); err != nil {
			return u.bundleError(api.PartExtraFiles, err)
		}
	}
	u.dropEarly()
	return nil
}

func (u *upload) extraPart(p io.Reader, name string, hasFile bool) *reqError {
	if !hasFile {
		return errorf(http.StatusBadRequest, "%s part without a filename", api.PartExtraFiles)
	}
	if err := topology.ValidatePath(name); err != nil {
		return u.bundleError(api.PartExtraFiles, err)
	}
	rr := &readRecorder{r: p}
	if u.bundle != nil {
		if err := u.bundle.AddFileFrom(name, rr); err != nil {
			if rr.err != nil {
				return u.bodyError(rr.err)
			}
			return u.bundleError(api.PartExtraFiles, err)
		}
		return nil
	}
	return u.spoolEarly(name, rr)
}

// spoolEarly keeps an extra file that came before the topology part in a
// temporary file, enforcing the limits the bundle will enforce again.
func (u *upload) spoolEarly(name string, rr *readRecorder) *reqError {
	lim := u.s.limits
	if len(u.early) >= lim.MaxFiles {
		return u.bundleError(api.PartExtraFiles,
			&topology.LimitError{Kind: topology.LimitFileCount, Limit: int64(lim.MaxFiles)})
	}
	f, err := os.CreateTemp(u.s.spoolDir, "remotelab-upload-*")
	if err != nil {
		return errorf(http.StatusInternalServerError, "spool extra file: %v", err)
	}
	n, err := io.Copy(f, io.LimitReader(rr, lim.MaxFileBytes+1))
	u.early = append(u.early, earlyFile{path: name, f: f})
	switch {
	case rr.err != nil:
		return u.bodyError(rr.err)
	case err != nil:
		return errorf(http.StatusInternalServerError, "spool extra file: %v", err)
	case n > lim.MaxFileBytes:
		return u.bundleError(api.PartExtraFiles,
			&topology.LimitError{Path: name, Kind: topology.LimitFileSize, Limit: lim.MaxFileBytes})
	}
	u.earlyBytes += n
	if u.earlyBytes > lim.MaxTotalBytes {
		return u.bundleError(api.PartExtraFiles,
			&topology.LimitError{Path: name, Kind: topology.LimitTotalSize, Limit: lim.MaxTotalBytes})
	}
	return nil
}

// dropEarly removes the spooled early files.
func (u *upload) dropEarly() {
	for _, e := range u.early {
		e.f.Close()
		os.Remove(e.f.Name())
	}
	u.early = nil
}

// bodyError answers a failure to read the request body.
func (u *upload) bodyError(err error) *reqError {
	if u.body.tooLarge {
		return errorf(http.StatusRequestEntityTooLarge,
			"Request body is larger than the limit of %d bytes", u.body.limit())
	}
	return errorf(http.StatusBadRequest, "Malformed multipart body: %s", api.Clip(err.Error()))
}

// bundleError answers an error of the topology package about a part.
func (u *upload) bundleError(part string, err error) *reqError {
	var pe *topology.PathError
	var le *topology.LimitError
	switch {
	case errors.As(err, &pe):
		return errorf(http.StatusBadRequest, "%s %q: %s", part, api.Clip(pe.Path), pe.Reason)
	case errors.Is(err, topology.ErrBadTopologyName):
		return fail(http.StatusBadRequest, api.DetailBadTopologyName)
	case errors.As(err, &le):
		switch le.Kind {
		case topology.LimitFileCount:
			return errorf(http.StatusRequestEntityTooLarge,
				"Too many %s (limit %d)", api.PartExtraFiles, le.Limit)
		case topology.LimitTotalSize:
			return errorf(http.StatusRequestEntityTooLarge,
				"%s %q: the upload is larger than the total limit of %d bytes", part, api.Clip(le.Path), le.Limit)
		}
		return errorf(http.StatusRequestEntityTooLarge,
			"%s %q is larger than the limit of %d bytes", part, api.Clip(le.Path), le.Limit)
	case errors.Is(err, topology.ErrInvalid):
		return fail(http.StatusUnprocessableEntity, api.Clip(err.Error()))
	}
	u.s.log.Error("store upload", "err", err)
	return errorf(http.StatusInternalServerError, "store upload: %v", err)
}

// touchEvery is how often an upload in progress refreshes its session.
const touchEvery = time.Second

// bodyReader records whether the request body crossed its size limit or
// its deadline, so that errors surfacing through the multipart reader can
// be told apart, and refreshes the session as bytes arrive.
type bodyReader struct {
	r        io.ReadCloser
	tooLarge bool
	timedOut bool
	max      int64
	touch    func()
	touched  time.Time
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if now := time.Now(); now.Sub(b.touched) >= touchEvery {
			b.touched = now
			b.touch()
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		b.tooLarge, b.max = true, mbe.Limit
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut = true
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.r.Close() }

func (b *bodyReader) limit() int64 { return b.max }

// readRecorder records the first read error of a part, so a failure of
// Bundle.AddFileFrom can be blamed on the body or on the bundle.
type readRecorder struct {
	r   io.Reader
	err error
}

func (r *readRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}
