package httpserver_test

// The headless Chromium the dashboard tests drive, and how they wait on
// and read the page.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// pageWait bounds every wait on the page: generous, the tests run on
// loaded 2-core machines while the page reacts within a second.
const pageWait = 30 * time.Second

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
	wctx, cancel := context.WithTimeout(ctx, pageWait)
	defer cancel()
	_, err := chromedp.Run(wctx, chromedp.Poll[bool]("(() => {"+pageHelpers+"return ("+cond+");})()",
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(pageWait)))
	if err != nil {
		shown, _ := run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
		t.Fatalf("wait for %s: %v\nthe page shows:\n%s", what, err, shown)
	}
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := run(ctx, chromedp.Evaluate[T]("(() => {"+pageHelpers+"return ("+expr+");})()"))
	require.NoError(t, err, "evaluate %s", expr)
	return v
}

// act runs the steps in the page, failing the test on an error.
func act(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	_, err := run(ctx, chromedp.Steps(steps...))
	require.NoError(t, err)
}

// run runs the action with a time limit, so a page that blocks (on a
// dialog, say) fails the test instead of hanging it.
func run[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, pageWait)
	defer cancel()
	return chromedp.Run(ctx, a)
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
	act(t, ctx, chromedp.EmulateViewport(width, 200))
	// Lay out at the new width, then grow the viewport to the whole page.
	height, err := run(ctx, chromedp.Evaluate[int64](
		`new Promise((ok) => requestAnimationFrame(() => ok(document.documentElement.scrollHeight)))`,
		chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	act(t, ctx, chromedp.EmulateViewport(width, max(height, 400)))
	png, err := run(ctx, chromedp.FullScreenshot(100))
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
// returns the context of its tab. An uncaught exception in the page, or a
// dialog it opens (dismissed at once, so it cannot block the page), fails
// the test. The browser ends with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	// Chromium now and then crashes while it starts (crashpad's "no stack
	// mapping" on a loaded machine); a browser that never started says
	// nothing about the page, so the start is tried three times.
	var (
		ctx      context.Context
		stop     func()
		failures []string
	)
	for attempt := 1; ; attempt++ {
		var err error
		if ctx, stop, err = startBrowser(t, path); err == nil {
			break
		}
		failures = append(failures, err.Error())
		if attempt == 3 {
			t.Fatalf("start %s, 3 tries:\n%s", path, strings.Join(failures, "\n\n"))
		}
		t.Logf("start %s (try %d of 3): %v", path, attempt, err)
	}
	var (
		mu       sync.Mutex
		problems []string
		watchers sync.WaitGroup
	)
	problem := func(p string) {
		mu.Lock()
		problems = append(problems, p)
		mu.Unlock()
	}
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	watchers.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				problem("page console: " + m.String())
			}
		}
	})
	watchers.Go(func() {
		for d, err := range dialogs {
			if err != nil {
				return
			}
			problem(fmt.Sprintf("the page opened a %s dialog: %q", d.Type, d.Message))
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
		}
	})
	t.Cleanup(func() {
		stop()
		watchers.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
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

// startBrowser starts a headless Chromium at path for t and returns the
// context of its tab and the function that ends it; err (with the
// browser's output) when it did not start.
func startBrowser(t *testing.T, path string) (ctx context.Context, stop func(), err error) {
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
	stop = func() {
		cancel()
		cancelAlloc()
	}
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("%w\n%s", err, out.String())
	}
	return ctx, stop, nil
}
