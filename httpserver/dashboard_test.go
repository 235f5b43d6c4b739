package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

// pageWait bounds every wait on the page: generous, the tests run on
// loaded 2-core machines while the page reacts within a second.
const pageWait = 10 * time.Second

// hostileOwner is an owner that a page building HTML from strings would
// turn into an element.
const hostileOwner = `<img src=x onerror=alert(1)>`

func TestDashboardServesOneSelfContainedPage(t *testing.T) {
	srv := remotelabtest.NewServer(t)
	res, err := srv.HTTPClient().Get(srv.URL() + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)

	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	csp := res.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "default-src 'self'", "CSP %q", csp)
	assert.NotContains(t, csp, "*", "CSP %q", csp)
	assert.Contains(t, string(body), "<title>remotelab</title>")

	// No external asset: no src or href that leaves the page, no CSS
	// import or url(), and no URL of anywhere at all in the page.
	for _, m := range regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*["']?([^"'\s>]*)`).FindAllSubmatch(body, -1) {
		t.Errorf("the page references %q", m[1])
	}
	for _, s := range []string{"http://", "https://", "//cdn", "@import", "url("} {
		assert.NotContains(t, string(body), s)
	}

	// Only GET: the page is not a form target.
	res, err = srv.HTTPClient().Post(srv.URL()+"/", "text/plain", nil)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
}

// TestDashboardInBrowser drives the page in a real headless Chromium:
// sessions created through the API appear, client input stays text, and a
// change of the queue shows without a reload.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	srv := remotelabtest.NewServer(t)
	alice := openSession(t, srv, api.SessionRequest{Owner: "alice", Labels: map[string]string{"job": "https://ci.example/jobs/42"}})
	openSession(t, srv, api.SessionRequest{Owner: "bob"})
	openSession(t, srv, api.SessionRequest{Owner: hostileOwner, Labels: map[string]string{"job": "javascript:alert(1)"}})
	acquireLab(t, srv, alice)

	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900), chromedp.Navigate(srv.URL()+"/")))
	waitPage(t, ctx, "alice holds a running lab; bob, then the hostile owner, wait", `
		text('[data-testid=holder-owner]') === 'alice' &&
		text('[data-testid=lab-state]') === 'running' &&
		waiters() === JSON.stringify(['1 bob', '2 ' + `+jsString(hostileOwner)+`])`)

	link := evaluate[map[string]string](t, ctx, `(() => {
		const a = document.querySelector('[data-testid=holder] a[data-testid=job-link]');
		return a ? {href: a.href, rel: a.rel, text: a.textContent} : {};
	})()`)
	assert.Equal(t, map[string]string{"href": "https://ci.example/jobs/42", "rel": "noopener noreferrer", "text": "https://ci.example/jobs/42"}, link)
	assert.Equal(t, 0, evaluate[int](t, ctx, `document.querySelectorAll('img').length`), "the hostile owner made an element")
	assert.Equal(t, 0, evaluate[int](t, ctx, `document.querySelectorAll('[data-position="2"] a').length`),
		"a javascript: label became a link")
	assert.Equal(t, "alice · remotelab", evaluate[string](t, ctx, `document.title`))
	assert.Equal(t, "live", evaluate[string](t, ctx, `text('[data-testid=connection]')`))

	// A change shows without a reload: alice leaves, bob holds, carol
	// joins, and alice's session appears in the history.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__noReload = 1`)))
	changed := time.Now()
	closeSession(t, srv, alice)
	openSession(t, srv, api.SessionRequest{Owner: "carol", Labels: map[string]string{"suite": "bgp"}})
	waitPage(t, ctx, "bob holds; the hostile owner, then carol, wait; alice's session is history", `
		text('[data-testid=holder-owner]') === 'bob' &&
		waiters() === JSON.stringify([`+jsString("1 "+hostileOwner)+`, '2 carol']) &&
		text('[data-testid=history-row] [data-testid=history-owner]') === 'alice' &&
		text('[data-testid=history-row] [data-testid=history-outcome]') === 'closed'`)
	t.Logf("the page showed the change %v after it was made", time.Since(changed).Round(time.Millisecond))
	assert.Equal(t, 1, evaluate[int](t, ctx, `window.__noReload`), "the page reloaded")
	assert.Equal(t, "bob · remotelab", evaluate[string](t, ctx, `document.title`))

	for _, width := range []int64{375, 1440} {
		screenshot(t, ctx, width, fmt.Sprintf("dashboard-%d.png", width))
	}

	// The server goes away: the page says so and keeps retrying.
	srv.Close()
	waitPage(t, ctx, "the page says it lost the server",
		`visible('[data-testid=banner-disconnected]') && text('[data-testid=connection]') === 'reconnecting'`)
}

// TestDashboardShowsDraining: an admin's drain shows as a banner, and goes
// away on resume.
func TestDashboardShowsDraining(t *testing.T) {
	ctx := browser(t)
	srv := remotelabtest.NewServer(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL()+"/")))
	waitPage(t, ctx, "the empty states", `
		text('[data-testid=holder-empty]') === 'Nobody holds the lab' &&
		text('[data-testid=waiting-empty]') === 'Nobody waits' &&
		text('[data-testid=lab-state]') === 'none' && !visible('[data-testid=banner-draining]')`)

	adminPost(t, srv, "/admin/drain", http.StatusNoContent)
	waitPage(t, ctx, "the draining banner", `visible('[data-testid=banner-draining]')`)
	adminPost(t, srv, "/admin/resume", http.StatusNoContent)
	waitPage(t, ctx, "no draining banner", `!visible('[data-testid=banner-draining]')`)
}

// pageHelpers are defined in every page the tests wait on.
const pageHelpers = `
	window.text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent : null; };
	window.visible = (sel) => { const e = document.querySelector(sel); return !!e && !e.hidden && e.getClientRects().length > 0; };
	window.waiters = () => JSON.stringify([...document.querySelectorAll('[data-testid=waiting-row]')].map(
		(r) => r.dataset.position + ' ' + r.querySelector('[data-testid=waiting-owner]').textContent));
`

// waitPage waits until the JavaScript condition holds in the page, and
// fails the test with what the page shows when it does not in time.
func waitPage(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("(() => {"+pageHelpers+"return ("+cond+");})()",
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(pageWait)))
	if err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
		t.Fatalf("wait for %s: %v\nthe page shows:\n%s", what, err, shown)
	}
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T]("(() => {"+pageHelpers+"return ("+expr+");})()"))
	require.NoError(t, err, "evaluate %s", expr)
	return v
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// screenshot takes a full-page screenshot at the given width and writes
// it into the test's temporary directory and, when
// REMOTELAB_SCREENSHOT_DIR is set, there too.
func screenshot(t *testing.T, ctx context.Context, width int64, name string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(width, 800)))
	// Lay out at the new width, then grow the viewport to the whole page.
	height, err := chromedp.Run(ctx, chromedp.Evaluate[int64](
		`new Promise((ok) => requestAnimationFrame(() => ok(document.documentElement.scrollHeight)))`,
		chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(width, max(height, 400))))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dirs := []string{t.TempDir()}
	if d := os.Getenv("REMOTELAB_SCREENSHOT_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		require.NoError(t, os.WriteFile(p, png, 0o644))
		t.Logf("screenshot %s", p)
	}
}

// chromium returns the browser to test with: $REMOTELAB_CHROMIUM, else
// the first of chromium, chromium-browser and google-chrome on PATH. It
// skips the test when there is none, or fails it when
// REMOTELAB_BROWSER_REQUIRED=1.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("REMOTELAB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found: install it (Debian: apt-get install chromium) or set REMOTELAB_CHROMIUM to its path"
	if os.Getenv("REMOTELAB_BROWSER_REQUIRED") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts a headless Chromium with a fresh profile and no
// background networking (the machine may have no network at all) and
// returns the context of its tab. It fails the test on an uncaught
// exception in the page or a Content-Security-Policy violation. The
// browser ends with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	var out bytes.Buffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(&syncWriter{w: &out}),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v\n%s", path, err, out.String())
	}
	messages := chromedp.Console(ctx)
	var (
		mu       sync.Mutex
		problems []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("page console: %s", p)
		}
	})
	return ctx
}

// syncWriter serialises writes of the browser's stdout and stderr.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// openSession creates a session with the given metadata through the API
// and returns its id.
func openSession(t *testing.T, srv *remotelabtest.Server, req api.SessionRequest) string {
	t.Helper()
	body, err := json.Marshal(req)
	require.NoError(t, err)
	res, err := srv.HTTPClient().Post(srv.URL()+"/session", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode, "POST /session: %s", b)
	var c api.CreateSessionResponse
	require.NoError(t, json.Unmarshal(b, &c))
	return c.SessionID
}

// acquireLab acquires topoA for the session through the API.
func acquireLab(t *testing.T, srv *remotelabtest.Server, session string) {
	t.Helper()
	body, ctype := form(topo("lab.yml", topoA))
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/lab", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set(api.HeaderSessionID, session)
	send(t, srv, req, http.StatusOK)
}

// closeSession ends the session through the API.
func closeSession(t *testing.T, srv *remotelabtest.Server, session string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, srv.URL()+"/session/"+session, nil)
	require.NoError(t, err)
	send(t, srv, req, http.StatusNoContent)
}

// adminPost sends an empty POST to path and checks the status code.
func adminPost(t *testing.T, srv *remotelabtest.Server, path string, want int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL()+path, nil)
	require.NoError(t, err)
	send(t, srv, req, want)
}

func send(t *testing.T, srv *remotelabtest.Server, req *http.Request, want int) {
	t.Helper()
	res, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, want, res.StatusCode, "%s %s: %s", req.Method, req.URL.Path, b)
}
