package httpserver

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Event stream settings.
const (
	// eventInterval is the least time between two events: bursts of
	// changes are coalesced into at most 4 events a second.
	eventInterval = 250 * time.Millisecond
	// eventWriteTimeout drops a viewer that cannot take an event this
	// long (a stalled connection), instead of queueing for it.
	eventWriteTimeout = 10 * time.Second
	// eventKeepAlive is how often an idle stream sends a comment, so
	// proxies keep it open.
	eventKeepAlive = 30 * time.Second
)

// eventHub fans the /queue document out to the viewers of GET /events.
// One goroutine builds the document after a change (at most once per
// eventInterval) and hands it to every viewer's one-slot mailbox, replacing
// an older one a viewer has not taken yet: a slow viewer skips documents
// and never makes the server hold more than one per viewer.
type eventHub struct {
	s *Server

	mu   sync.Mutex
	subs map[chan []byte]struct{}

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newEventHub(s *Server) *eventHub {
	h := &eventHub{s: s, subs: make(map[chan []byte]struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go h.pump()
	return h
}

// close stops the hub's goroutine; streams end with the server's drain.
func (h *eventHub) close() {
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// pump publishes a document after every change, coalescing bursts.
func (h *eventHub) pump() {
	defer close(h.done)
	var last time.Time
	changed := h.s.b.Changed()
	for {
		select {
		case <-h.stop:
			return
		case <-changed:
		}
		if wait := eventInterval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-h.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		// Wait for the next change from before the document is built: a
		// change made while it is built or sent must not be missed.
		changed = h.s.b.Changed()
		if h.viewers() > 0 {
			h.publish(h.document())
		}
	}
}

// document encodes the current /queue document.
func (h *eventHub) document() []byte {
	data, err := json.Marshal(queueDoc(h.s.b.Queue()))
	if err != nil {
		panic("encode queue: " + err.Error())
	}
	return data
}

func (h *eventHub) viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// publish puts doc into every mailbox, replacing what is there.
func (h *eventHub) publish(doc []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case <-ch:
		default:
		}
		ch <- doc
	}
}

func (h *eventHub) subscribe() chan []byte {
	ch := make(chan []byte, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *eventHub) unsubscribe(ch chan []byte) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

// serve handles GET /events: a server-sent event stream whose "queue"
// events carry the /queue document, the current one first, then one after
// each change (at most 4 a second).
func (h *eventHub) serve(w http.ResponseWriter, r *http.Request) {
	ch := h.subscribe()
	defer h.unsubscribe(ch)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(chunks ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		for _, c := range chunks {
			if _, err := w.Write(c); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: 2000\nevent: queue\ndata: "), h.document(), []byte("\n\n")) {
		return
	}
	keepAlive := time.NewTicker(eventKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case doc := <-ch:
			if !send([]byte("event: queue\ndata: "), doc, []byte("\n\n")) {
				return
			}
		case <-keepAlive.C:
			if !send([]byte(": keep-alive\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		case <-h.s.drained.Done():
			return
		}
	}
}
