package httpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
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

// These tests run over net.Pipe in synctest bubbles: the coalescing
// interval and the write timeout of slow viewers are on the bubble's
// clock.

// sseEvent is one server-sent event as a viewer received it.
type sseEvent struct {
	at   time.Time
	name string
	data string
}

// queue decodes the event's /queue document.
func (ev sseEvent) queue(t *testing.T) api.Queue {
	t.Helper()
	var q api.Queue
	strictDecode(t, []byte(ev.data), &q)
	return q
}

// watch opens GET /events and delivers its events (comments skipped) on
// the returned channel, closed when the stream ends.
func (e *env) watch(t *testing.T) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/events", nil)
	require.NoError(t, err)
	res, err := e.client.Do(hr)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	assert.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
	ch := make(chan sseEvent, 1000)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" {
					ev.at = time.Now()
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

// drainEvents returns the events received so far.
func drainEvents(ch <-chan sseEvent) []sseEvent {
	var out []sseEvent
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

// TestEventsFirstIsQueue: the first event is the current /queue document;
// a change is sent within the coalescing interval (250 ms).
func TestEventsFirstIsQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		holder := e.createSession().SessionID
		e.open(api.SessionRequest{Owner: "bob", Labels: map[string]string{"job": "7"}})
		time.Sleep(3 * time.Second)
		synctest.Wait() // the hub published the joins to nobody
		_, doc := e.queueDoc()
		events := e.watch(t)
		first := <-events
		assert.Equal(t, "queue", first.name)
		assert.JSONEq(t, string(doc), first.data, "the first event is GET /queue")
		assert.NotContains(t, first.data, holder)

		for i, owner := range []string{"carol", "dave", "erin"} {
			time.Sleep(time.Second)
			start := time.Now()
			e.open(api.SessionRequest{Owner: owner})
			ev := <-events
			assert.LessOrEqual(t, time.Since(start), 250*time.Millisecond, "event %d came late", i)
			q := ev.queue(t)
			require.Len(t, q.Waiting, 2+i)
			assert.Equal(t, owner, q.Waiting[len(q.Waiting)-1].Owner)
		}
		require.Equal(t, http.StatusNoContent, e.send(del("/session/"+holder, "")).code)
		q := (<-events).queue(t)
		require.NotNil(t, q.Holder)
		assert.Equal(t, "bob", q.Holder.Owner, "a promotion is an event")
	})
}

// TestEventsCoalesceBursts: 100 joins spread over one second give at most
// 4 events a second (plus the first), the last showing them all.
func TestEventsCoalesceBursts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		events := e.watch(t)
		<-events
		start := time.Now()
		for range 100 {
			_, err := e.b.Join(broker.Meta{Owner: "burst"})
			require.NoError(t, err)
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		got := drainEvents(events)
		inFirst := 0
		for _, ev := range got {
			if ev.at.Sub(start) <= time.Second {
				inFirst++
			}
		}
		assert.LessOrEqual(t, inFirst, 5, "events in the burst's second")
		assert.GreaterOrEqual(t, inFirst, 2, "a burst over a second is not held back a second")
		require.NotEmpty(t, got)
		last := got[len(got)-1].queue(t)
		assert.Len(t, last.Waiting, 99, "the last event shows every join")
		for i := 1; i < len(got); i++ {
			assert.GreaterOrEqual(t, got[i].at.Sub(got[i-1].at), 250*time.Millisecond, "events %d and %d", i-1, i)
		}
	})
}

// TestEventsSlowViewer: a viewer that never reads (over net.Pipe nothing
// is buffered) does not hold up the others, and is dropped after the
// write timeout instead of having documents queued for it.
func TestEventsSlowViewer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		slow, err := e.pipe.DialContext(context.Background(), "pipe", "pipe")
		require.NoError(t, err)
		defer slow.Close()
		_, err = io.WriteString(slow, "GET /events HTTP/1.1\r\nHost: remotelab.test\r\n\r\n")
		require.NoError(t, err)
		synctest.Wait() // the slow viewer's handler is stuck writing

		fast := e.watch(t)
		<-fast
		start := time.Now()
		for i := range 8 {
			e.open(api.SessionRequest{Owner: "o"})
			<-fast
			assert.LessOrEqual(t, time.Since(start), time.Duration(i+1)*time.Second+250*time.Millisecond,
				"the fast viewer was held up")
			time.Sleep(time.Second)
		}

		// The slow viewer was dropped after the write timeout (10 s): its
		// handler ended, and its connection is closed with nothing sent.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		assert.Contains(t, e.logs.String(), "msg=request method=GET path=/events status=200 duration=10s")
		buf := make([]byte, 1)
		n, err := slow.Read(buf)
		assert.Zero(t, n)
		assert.ErrorIs(t, err, io.EOF)

		// The fast viewer still gets events: the next ones (an earlier
		// change may still have one coming) show the new join.
		e.open(api.SessionRequest{Owner: "after"})
		for q := (<-fast).queue(t); len(q.Waiting) < 8; q = (<-fast).queue(t) {
		}
	})
}

// TestEventsEndOnDrain: draining the server ends every stream at once.
func TestEventsEndOnDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, overPipe())
		a, b := e.watch(t), e.watch(t)
		<-a
		<-b
		start := time.Now()
		e.srv.Drain()
		for _, ch := range []<-chan sseEvent{a, b} {
			for range ch {
			}
		}
		assert.Zero(t, time.Since(start), "streams ended at once")
		r := e.get("/events", "")
		assert.Equal(t, http.StatusServiceUnavailable, r.code)
		var doc api.Error
		require.NoError(t, json.Unmarshal(r.body, &doc))
		assert.Equal(t, api.DetailShuttingDown, doc.Detail)
	})
}
