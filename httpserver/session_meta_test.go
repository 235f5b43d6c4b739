package httpserver_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/remotelab-go/remotelab/api"
	"github.com/remotelab-go/remotelab/broker"
)

// labelsJSON returns a JSON object of n labels k0..k(n-1).
func labelsJSON(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestSessionRequestRejected: every bound of SPEC §9/§10 on the POST
// /session body, and every malformed body, is refused (422 in the list
// shape, 413 for a body over 64 KiB) and creates nothing.
func TestSessionRequestRejected(t *testing.T) {
	const year = api.MaxLimitSeconds
	for _, tc := range []struct {
		name string
		body string
		code int      // default 422
		loc  []string // of the first issue (422)
		typ  string   // of the first issue (422)
	}{
		{name: "owner of 129 characters", body: `{"owner":"` + strings.Repeat("é", 129) + `"}`, loc: []string{"body", "owner"}, typ: api.IssueValue},
		{name: "owner with a control character", body: `{"owner":"alice\u0001"}`, loc: []string{"body", "owner"}, typ: api.IssueValue},
		{name: "owner with a newline", body: `{"owner":"alice\nbob"}`, loc: []string{"body", "owner"}, typ: api.IssueValue},
		{name: "owner with DEL", body: `{"owner":"alice\u007f"}`, loc: []string{"body", "owner"}, typ: api.IssueValue},
		{name: "owner with a line separator", body: `{"owner":"alice\u2028"}`, loc: []string{"body", "owner"}, typ: api.IssueValue},
		{name: "17 labels", body: `{"labels":` + labelsJSON(17) + `}`, loc: []string{"body", "labels"}, typ: api.IssueValue},
		{name: "empty label key", body: `{"labels":{"":"v"}}`, loc: []string{"body", "labels"}, typ: api.IssueValue},
		{name: "label key of 64 characters", body: `{"labels":{"` + strings.Repeat("k", 64) + `":"v"}}`, loc: []string{"body", "labels"}, typ: api.IssueValue},
		{name: "label key with a space", body: `{"labels":{"a b":"v"}}`, loc: []string{"body", "labels"}, typ: api.IssueValue},
		{name: "label key with a slash", body: `{"labels":{"ci/job":"v"}}`, loc: []string{"body", "labels"}, typ: api.IssueValue},
		{name: "label key not ASCII", body: `{"labels":{"jöb":"v"}}`, loc: []string{"body", "labels"}, typ: api.IssueValue},
		{name: "label value of 257 characters", body: `{"labels":{"job":"` + strings.Repeat("ü", 257) + `"}}`, loc: []string{"body", "labels", "job"}, typ: api.IssueValue},
		{name: "label value with a tab", body: `{"labels":{"job":"a\tb"}}`, loc: []string{"body", "labels", "job"}, typ: api.IssueValue},
		{name: "wait_timeout 0", body: `{"wait_timeout":0}`, loc: []string{"body", "wait_timeout"}, typ: api.IssueValue},
		{name: "wait_timeout negative", body: `{"wait_timeout":-5}`, loc: []string{"body", "wait_timeout"}, typ: api.IssueValue},
		{name: "wait_timeout over a year", body: fmt.Sprintf(`{"wait_timeout":%d}`, year+1), loc: []string{"body", "wait_timeout"}, typ: api.IssueValue},
		{name: "max_hold 0", body: `{"max_hold":0}`, loc: []string{"body", "max_hold"}, typ: api.IssueValue},
		{name: "max_hold negative", body: `{"max_hold":-0.5}`, loc: []string{"body", "max_hold"}, typ: api.IssueValue},
		{name: "max_hold over a year", body: `{"max_hold":1e9}`, loc: []string{"body", "max_hold"}, typ: api.IssueValue},
		{name: "number beyond float64", body: `{"max_hold":1e400}`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "unknown field", body: `{"ownr":"alice"}`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "wrong type", body: `{"owner":5}`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "labels not an object", body: `{"labels":["a"]}`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "limit as a string", body: `{"wait_timeout":"30s"}`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "bad JSON", body: `{"owner":`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "not an object", body: `"alice"`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "null", body: `null`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "a list", body: ` [{"owner":"alice"}]`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "only white space", body: " \n", loc: []string{"body"}, typ: api.IssueJSON},
		{name: "trailing object", body: `{"owner":"alice"} {"owner":"bob"}`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "trailing garbage", body: `{"owner":"alice"}x`, loc: []string{"body"}, typ: api.IssueJSON},
		{name: "body over 64 KiB", body: `{"owner":"` + strings.Repeat("a", 64<<10) + `"}`, code: http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.send(jsonReq(http.MethodPost, "/session", tc.body))
			want := tc.code
			if want == 0 {
				want = http.StatusUnprocessableEntity
			}
			require.Equal(t, want, r.code, "body %s", r.body)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			if want == http.StatusUnprocessableEntity {
				is := r.issues(t)
				require.NotEmpty(t, is)
				assert.Equal(t, tc.loc, is[0].Loc)
				assert.Equal(t, tc.typ, is[0].Type)
				assert.NotEmpty(t, is[0].Msg)
			} else {
				assert.Contains(t, r.detail(t), "larger than 65536 bytes")
			}
			assert.LessOrEqual(t, len(r.body), 1024, "the error echoes too much: %d bytes", len(r.body))
			assert.Zero(t, e.b.Len(), "a refused request created a session")
			assert.NotContains(t, e.logs.String(), `msg="Created session"`)
			assert.Empty(t, e.head())
		})
	}
}

// TestSessionRequestAccepted: the bounds themselves are allowed, a
// request without a JSON body is the original's (owner: the client's
// address), and a body that is not JSON by its Content-Type is ignored.
func TestSessionRequestAccepted(t *testing.T) {
	labels16 := make(map[string]string, 16)
	for i := range 16 {
		labels16[fmt.Sprintf("k%d", i)] = "v"
	}
	longKey := strings.Repeat("K", 63)
	for _, tc := range []struct {
		name   string
		req    request
		owner  string
		labels map[string]string
	}{
		{name: "no body", req: post("/session", ""), owner: "127.0.0.1"},
		{name: "empty JSON body", req: jsonReq(http.MethodPost, "/session", ""), owner: "127.0.0.1"},
		{name: "empty object", req: jsonReq(http.MethodPost, "/session", "{}"), owner: "127.0.0.1"},
		{name: "text body ignored", req: request{method: http.MethodPost, path: "/session", ctype: "text/plain", body: []byte(`{"owner":`)}, owner: "127.0.0.1"},
		{name: "form body ignored", req: request{method: http.MethodPost, path: "/session", ctype: "application/x-www-form-urlencoded", body: []byte("owner=mallory")}, owner: "127.0.0.1"},
		{name: "no content type", req: request{method: http.MethodPost, path: "/session", body: []byte(`{"owner":"mallory"}`)}, owner: "127.0.0.1"},
		{name: "JSON with charset", req: request{method: http.MethodPost, path: "/session", ctype: "Application/JSON; charset=utf-8", body: []byte(`{"owner":"alice"}`)}, owner: "alice"},
		{name: "owner of 128 characters", req: jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: strings.Repeat("é", 128)}), owner: strings.Repeat("é", 128)},
		{name: "owner with spaces", req: jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: "Alice Smith <alice@ci-3>"}), owner: "Alice Smith <alice@ci-3>"},
		{name: "16 labels", req: jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: "a", Labels: labels16}), owner: "a", labels: labels16},
		{
			name:   "longest key and value",
			req:    jsonReq(http.MethodPost, "/session", api.SessionRequest{Owner: "a", Labels: map[string]string{longKey: strings.Repeat("ü", 256), "a_b.c-D9": ""}}),
			owner:  "a",
			labels: map[string]string{longKey: strings.Repeat("ü", 256), "a_b.c-D9": ""},
		},
		{name: "limits at their bounds", req: jsonReq(http.MethodPost, "/session", fmt.Sprintf(`{"wait_timeout":%d,"max_hold":%d}`, api.MaxLimitSeconds, api.MaxLimitSeconds)), owner: "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.send(tc.req)
			require.Equal(t, http.StatusCreated, r.code, "body %s", r.body)
			var c api.CreateSessionResponse
			r.decode(t, &c)
			assert.Equal(t, tc.owner, c.Owner)
			q, _ := e.queueDoc()
			require.NotNil(t, q.Holder)
			assert.Equal(t, tc.owner, q.Holder.Owner)
			want := tc.labels
			if want == nil {
				want = map[string]string{}
			}
			assert.Equal(t, want, q.Holder.Labels)
			assert.Equal(t, c.SessionID, e.head())
		})
	}
}

// TestSessionMetadataInQueue: owner, labels and limits show in /queue;
// wait_timeout gives a waiter its wait_deadline and max_hold the holder
// its hold_deadline, in the create answer, the status and /queue. The
// server's --max-hold caps what a session asks and applies to one that
// asks nothing.
func TestSessionMetadataInQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe(), withBroker(func(c *broker.Config) { c.MaxHold = time.Hour }))
		start := time.Now().UTC()
		hold := e.open(api.SessionRequest{Owner: "alice", Labels: map[string]string{"job": "https://ci/1"}, MaxHold: seconds(90), WaitTimeout: seconds(5)})
		require.Equal(t, api.StatusActive, hold.Status)
		require.NotNil(t, hold.HoldDeadline)
		assert.Equal(t, start.Add(90*time.Second), *hold.HoldDeadline)
		assert.Nil(t, hold.WaitDeadline, "an active session waits for nothing")

		time.Sleep(10 * time.Second)
		wait := e.open(api.SessionRequest{Owner: "bob", WaitTimeout: seconds(30), MaxHold: seconds(7200)})
		require.Equal(t, api.StatusWaiting, wait.Status)
		require.NotNil(t, wait.WaitDeadline)
		assert.Equal(t, start.Add(40*time.Second), *wait.WaitDeadline)
		assert.Nil(t, wait.HoldDeadline, "a waiter holds nothing yet")
		plain := e.createSession()
		assert.Equal(t, "pipe", plain.Owner)

		q, _ := e.queueDoc()
		require.NotNil(t, q.Holder)
		assert.Equal(t, "alice", q.Holder.Owner)
		assert.Equal(t, map[string]string{"job": "https://ci/1"}, q.Holder.Labels)
		assert.Equal(t, start.Add(90*time.Second), *q.Holder.HoldDeadline)
		assert.Nil(t, q.Holder.WaitDeadline)
		require.Len(t, q.Waiting, 2)
		assert.Equal(t, "bob", q.Waiting[0].Owner)
		assert.Equal(t, map[string]string{}, q.Waiting[0].Labels)
		assert.Equal(t, start.Add(40*time.Second), *q.Waiting[0].WaitDeadline)
		assert.Nil(t, q.Waiting[0].HoldDeadline)
		assert.Nil(t, q.Waiting[1].WaitDeadline, "no wait_timeout, no deadline")

		// bob is promoted: his hold is capped at the server's hour, and
		// his wait deadline is gone.
		time.Sleep(10 * time.Second)
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+hold.SessionID, "")).code)
		st := e.status(wait.SessionID)
		require.Equal(t, api.StatusActive, st.Status)
		require.NotNil(t, st.HoldDeadline)
		assert.Equal(t, start.Add(20*time.Second+time.Hour), *st.HoldDeadline, "max_hold capped by --max-hold")
		assert.Nil(t, st.WaitDeadline)

		// The plain session gets the cap as its hold.
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+wait.SessionID, "")).code)
		st = e.status(plain.SessionID)
		require.Equal(t, api.StatusActive, st.Status)
		require.NotNil(t, st.HoldDeadline)
		assert.Equal(t, start.Add(20*time.Second+time.Hour), *st.HoldDeadline)
	})
}

// TestSmallBodyTimesOut: a JSON body trickled or stalled (here half of it
// sent, then nothing) gets 408 after 30 s instead of holding the
// connection; nothing is created.
func TestSmallBodyTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		body := []byte(`{"owner": "slow", "labels": {"a": "b"}}`)
		u := e.startPiped(http.MethodPost, "/session", body, func(hr *http.Request) {
			hr.Header.Set("Content-Type", "application/json")
			hr.ContentLength = int64(len(body))
		})
		_ = u.send(0, 10)
		r := <-u.done
		_ = u.pw.Close()
		assert.Equal(t, 30*time.Second, time.Since(u.start))
		require.Equal(t, http.StatusRequestTimeout, r.code, "%s", r.body)
		assert.Contains(t, r.detail(t), "did not arrive within 30s")
		assert.Zero(t, e.b.Len(), "nothing created")
	})
}
