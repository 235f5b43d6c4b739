package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/auth"
	"github.com/remotelab-go/remotelab/broker"
	"github.com/remotelab-go/remotelab/lab"
	"github.com/remotelab-go/remotelab/remotelabtest"
)

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
	assert.Regexp(t, `script-src 'sha256-[A-Za-z0-9+/]{43}='(;|$)`, csp, "one inline script, allowed by its hash")
	for _, loose := range []string{"*", "unsafe-inline", "unsafe-eval", "data:"} {
		assert.NotContains(t, csp, loose, "CSP %q", csp)
	}
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
// sessions created through the API appear, client input stays text, a
// change of the queue shows without a reload, a running netlab step shows
// with its output and a ticking elapsed time, and a lost server shows.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	const netlabLine = "Waiting for r1 to accept SSH connections (attempt 12 of 60)"
	held := make(chan struct{}) // closed: the held lab start may finish
	runner := &remotelabtest.FakeRunner{UpHook: func(ctx context.Context, spec lab.Spec) error {
		if spec.Bundle.TopologyName() != "bgp.yml" {
			return nil
		}
		lab.ProgressFrom(ctx).Output(netlabLine)
		select {
		case <-held:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	srv := remotelabtest.NewServer(t, remotelabtest.WithRunner(runner))
	var release sync.Once
	free := func() { release.Do(func() { close(held) }) }
	t.Cleanup(free)

	alice := openSession(t, srv, api.SessionRequest{Owner: "alice", Labels: map[string]string{"job": "https://ci.example/jobs/42"}})
	bob := openSession(t, srv, api.SessionRequest{Owner: "bob", MaxHold: seconds(2700)})
	openSession(t, srv, api.SessionRequest{Owner: hostileOwner, Labels: map[string]string{"job": "javascript:alert(1)"}, WaitTimeout: seconds(1800)})
	acquireLab(t, srv, alice, "lab.yml", topoA)

	act(t, ctx, chromedp.EmulateViewport(1440, 900), chromedp.Navigate(srv.URL()+"/"))
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
	assert.Regexp(t, `^in (2[0-9]|30)m$`, evaluate[string](t, ctx, `text('[data-position="2"] [data-testid=waiting-deadline]')`))
	assert.Equal(t, "alice · remotelab", evaluate[string](t, ctx, `document.title`))
	assert.Equal(t, "live", evaluate[string](t, ctx, `text('[data-testid=connection]')`))

	// A change shows without a reload: alice leaves, bob holds, carol
	// joins, and alice's session appears in the history.
	act(t, ctx, chromedp.Evaluate[chromedp.Void](`window.__noReload = 1`))
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
	assert.Regexp(t, `^in (3[0-9]|4[0-5])m$`, evaluate[string](t, ctx, `text('[data-testid=holder-deadline]')`))

	// Bob starts another lab; its netlab step shows while it runs, and
	// its elapsed time ticks with no event from the server.
	var acquireErr error
	acquired := make(chan struct{})
	go func() {
		defer close(acquired)
		acquireErr = tryAcquireLab(srv, bob, "bgp.yml", topoB)
	}()
	t.Cleanup(func() { free(); <-acquired })
	waitPage(t, ctx, "the running netlab up and its last output line", `
		text('[data-testid=lab-state]') === 'starting' &&
		text('[data-testid=lab-operation-kind]') === 'netlab up' &&
		text('[data-testid=lab-output]') === `+jsString(netlabLine))
	elapsed := evaluate[string](t, ctx, `text('[data-testid=lab-operation-elapsed]')`)
	waitPage(t, ctx, "the elapsed time of netlab up to tick",
		`text('[data-testid=lab-operation-elapsed]') !== `+jsString(elapsed))

	for _, width := range []int64{375, 1440} {
		screenshot(t, ctx, width, fmt.Sprintf("dashboard-%d.png", width))
	}

	free()
	<-acquired
	require.NoError(t, acquireErr)
	waitPage(t, ctx, "bob's lab running", `
		text('[data-testid=lab-state]') === 'running' && text('[data-testid=lab-topology]') === 'bgp.yml' &&
		document.querySelector('[data-testid=lab-operation]') === null`)

	// The server goes away: the page says so and keeps retrying.
	srv.Close()
	waitPage(t, ctx, "the page says it lost the server",
		`visible('[data-testid=banner-disconnected]') && text('[data-testid=connection]') === 'reconnecting'`)
}

// TestDashboardShowsBanners: the empty states, then an admin's drain and
// a quarantine show as banners, and go away when they end.
func TestDashboardShowsBanners(t *testing.T) {
	ctx := browser(t)
	var downs atomic.Int32
	runner := &remotelabtest.FakeRunner{DownHook: func(context.Context, string) error {
		if downs.Add(1) == 1 {
			return errors.New("containerlab destroy exited 1")
		}
		return nil
	}}
	srv := remotelabtest.NewServer(t, remotelabtest.WithRunner(runner),
		remotelabtest.WithBroker(func(c *broker.Config) { c.QuarantineAfter = 1 }))
	act(t, ctx, chromedp.Navigate(srv.URL()+"/"))
	waitPage(t, ctx, "the empty states", `
		text('[data-testid=holder-empty]') === 'Nobody holds the lab' &&
		text('[data-testid=waiting-empty]') === 'Nobody waits' &&
		text('[data-testid=history-empty]') !== null &&
		text('[data-testid=lab-state]') === 'none' &&
		!visible('[data-testid=banner-draining]') && !visible('[data-testid=banner-quarantine]') &&
		document.title === 'remotelab'`)

	adminCall(t, srv, http.MethodPost, "/admin/drain")
	waitPage(t, ctx, "the draining banner", `visible('[data-testid=banner-draining]')`)
	adminCall(t, srv, http.MethodPost, "/admin/resume")
	waitPage(t, ctx, "no draining banner", `!visible('[data-testid=banner-draining]')`)

	// A teardown fails: the host is quarantined and the lab dirty.
	acquireLab(t, srv, openSession(t, srv, api.SessionRequest{Owner: "dave"}), "lab.yml", topoA)
	res := adminCall(t, srv, http.MethodDelete, "/admin/lab")
	require.GreaterOrEqual(t, res, 500, "DELETE /admin/lab with a failing teardown")
	waitPage(t, ctx, "the quarantine banner with its reason", `
		visible('[data-testid=banner-quarantine]') &&
		text('[data-testid=quarantine-reason]').includes('containerlab destroy exited 1') &&
		text('[data-testid=lab-state]') === 'dirty'`)
	adminCall(t, srv, http.MethodPost, "/admin/unquarantine")
	waitPage(t, ctx, "no quarantine banner", `!visible('[data-testid=banner-quarantine]')`)
}

// TestDashboardRunsNoInjectedScript: markup that reaches the page (as it
// would if a bug ever parsed client input as HTML) runs no script, because
// the page allows only its own inline script, by hash.
func TestDashboardRunsNoInjectedScript(t *testing.T) {
	ctx := browser(t)
	srv := remotelabtest.NewServer(t)
	act(t, ctx, chromedp.Navigate(srv.URL()+"/"))
	waitPage(t, ctx, "the page running", `text('[data-testid=connection]') === 'live'`)
	act(t, ctx, chromedp.Evaluate[chromedp.Void](`
		window.__violations = [];
		document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.effectiveDirective));
		document.body.insertAdjacentHTML('beforeend', '<img src="x" onerror="window.__injected = 1">');`))
	waitPage(t, ctx, "the injected handler to be refused or to run",
		`window.__violations.includes('script-src-attr') || '__injected' in window`)
	assert.False(t, evaluate[bool](t, ctx, `'__injected' in window`), "the injected handler ran")
}

// TestDashboardWithBasicAuth: with authentication on, a browser that
// logged in with HTTP Basic (any user name, the token as password) gets
// the page, its event stream and the history.
func TestDashboardWithBasicAuth(t *testing.T) {
	ctx := browser(t)
	srv := remotelabtest.NewServer(t, remotelabtest.WithAuth(tokens{
		"rlab_wall":  {Name: "wall", Role: auth.Viewer},
		"rlab_alice": {Name: "alice", Role: auth.User},
	}))
	res, err := srv.HTTPClient().Get(srv.URL() + "/")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "GET / without a token")
	if !slices.ContainsFunc(res.Header.Values("WWW-Authenticate"), func(v string) bool {
		return len(v) >= 6 && strings.EqualFold(v[:6], "basic ")
	}) {
		// Chromium reads only the first challenge of a header line.
		t.Skipf("no WWW-Authenticate header starts with Basic (got %q): browsers cannot log in; "+
			"the server must send Basic as its own header (or first)", res.Header.Values("WWW-Authenticate"))
	}

	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/session", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer rlab_alice")
	send(t, srv, req, http.StatusCreated)

	u, err := url.Parse(srv.URL())
	require.NoError(t, err)
	u.User = url.UserPassword("wall", "rlab_wall")
	act(t, ctx, chromedp.Navigate(u.String()+"/"))
	waitPage(t, ctx, "alice's session and the (empty) history", `
		text('[data-testid=holder-owner]') === 'alice' && text('[data-testid=connection]') === 'live' &&
		text('[data-testid=history-empty]') !== null`)
}

// tokens is an httpserver.Authenticator over a fixed set of tokens.
type tokens map[string]auth.Identity

func (m tokens) Lookup(token string) (auth.Identity, bool) {
	id, ok := m[token]
	return id, ok
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

// acquireLab acquires the topology (file name and text) for the session
// through the API.
func acquireLab(t *testing.T, srv *remotelabtest.Server, session, name, text string) {
	t.Helper()
	require.NoError(t, tryAcquireLab(srv, session, name, text))
}

// tryAcquireLab is acquireLab for another goroutine than the test's.
func tryAcquireLab(srv *remotelabtest.Server, session, name, text string) error {
	body, ctype := form(topo(name, text))
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/lab", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set(api.HeaderSessionID, session)
	res, err := srv.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("POST /lab: %s: %s", res.Status, b)
	}
	return err
}

// closeSession ends the session through the API.
func closeSession(t *testing.T, srv *remotelabtest.Server, session string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, srv.URL()+"/session/"+session, nil)
	require.NoError(t, err)
	send(t, srv, req, http.StatusNoContent)
}

// adminCall sends an empty admin request and returns its status code,
// failing the test on a 4xx answer.
func adminCall(t *testing.T, srv *remotelabtest.Server, method, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL()+path, nil)
	require.NoError(t, err)
	code, body := do(t, srv, req)
	require.False(t, code >= 400 && code < 500, "%s %s: %d %s", method, path, code, body)
	return code
}

func send(t *testing.T, srv *remotelabtest.Server, req *http.Request, want int) {
	t.Helper()
	code, body := do(t, srv, req)
	require.Equal(t, want, code, "%s %s: %s", req.Method, req.URL.Path, body)
}

func do(t *testing.T, srv *remotelabtest.Server, req *http.Request) (int, []byte) {
	t.Helper()
	res, err := srv.HTTPClient().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, b
}

// seconds returns a pointer to n seconds, for the limits of a session.
func seconds(n float64) *float64 { return &n }
