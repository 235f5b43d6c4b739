package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remotelab-go/remotelab/internal/clock"
)

// hostileKind is one kind of bad POST /lab and the answers it may get.
type hostileKind struct {
	name     string
	want     []int
	closeOK  bool // the server may also close the connection unanswered (body too large to drain)
	waiting  bool // sent by a waiting session
	noHeader bool // sent without X-Session-ID
	u        upload
}

func hostileKinds() []hostileKind {
	topo := topologyYAML(3, "hostile")
	big := append([]byte("provider: clab\nnodes: [r1]\n#"), strings.Repeat("x", 2<<20)...)
	many := make([]file, 600)
	for i := range many {
		many[i] = file{Name: fmt.Sprintf("f/%d.txt", i), Data: []byte("x")}
	}
	one := func(name string) []file { return []file{{Name: name, Data: []byte("x")}} }
	truncated := []byte("--XYZ\r\nContent-Disposition: form-data; name=\"topology\"; filename=\"t.yml\"\r\n" +
		"Content-Type: application/x-yaml\r\n\r\nnodes: [r1]\n")
	return []hostileKind{
		{name: "topology 2 MiB", want: []int{413}, closeOK: true, u: upload{Topo: big}},
		{name: "extra file 33 MiB (streamed)", want: []int{413}, closeOK: true,
			u: upload{Topo: topo, Extras: []file{{Name: "big.bin", Size: 33 << 20}}}},
		{name: "600 extra files", want: []int{413}, u: upload{Topo: topo, Extras: many}},
		{name: "extra file ../escape.txt", want: []int{400}, u: upload{Topo: topo, Extras: one("../escape.txt")}},
		{name: "extra file /etc/passwd", want: []int{400}, u: upload{Topo: topo, Extras: one("/etc/passwd")}},
		{name: `extra file dir\file`, want: []int{400}, u: upload{Topo: topo, Extras: one(`dir\file`)}},
		{name: "extra file a//b", want: []int{400}, u: upload{Topo: topo, Extras: one("a//b")}},
		{name: "topology named lab.txt", want: []int{400}, u: upload{TopoName: "lab.txt", Topo: topo}},
		{name: "topology: invalid YAML", want: []int{422}, u: upload{Topo: []byte("nodes: [r1\n  x: : :\n")}},
		{name: "topology without nodes", want: []int{422}, u: upload{Topo: []byte("provider: clab\n")}},
		{name: "topology is a list", want: []int{422}, u: upload{Topo: []byte("- r1\n- r2\n")}},
		{name: "no topology part", want: []int{422}, u: upload{Reuse: "true"}},
		{name: "reuse=maybe", want: []int{422}, u: upload{Topo: topo, Reuse: "maybe"}},
		{name: "truncated multipart", want: []int{400, 422}, u: upload{Raw: truncated, RawType: "multipart/form-data; boundary=XYZ"}},
		{name: "JSON body", want: []int{400, 415, 422}, u: upload{Raw: []byte(`{"topology": "nodes: [r1]"}`), RawType: "application/json"}},
		{name: "topology 2 MiB from a waiting session", want: []int{423}, closeOK: true, waiting: true, u: upload{Topo: big}},
		{name: "no X-Session-ID", want: []int{422}, noHeader: true, u: upload{Topo: topo}},
	}
}

// runHostile measures status-poll latency of waiting sessions and the
// server's RSS, first quietly, then while the active session sends a
// steady stream of oversized and malformed uploads; every bad upload must
// get its error status, the server must stay within a memory bound and
// keep no spooled upload, and the active session must still work after.
func runHostile(ctx context.Context, e *env, r *scenarioReport) error {
	srv, err := e.remotelabd(ctx)
	if err != nil {
		return err
	}
	defer srv.Stop()
	cfg := e.cfg
	c := newAPIClient(srv.URL, 8, 1)
	defer c.Close()
	a := newAPIClient(srv.URL, 16, 1) // the attacker's own connections
	defer a.Close()
	holder, err := c.create(ctx)
	if err != nil {
		return err
	}
	waiter, err := c.create(ctx)
	if err != nil {
		return err
	}
	probes, _, err := createMany(ctx, c, 20, 4)
	if err != nil {
		return err
	}
	kinds := hostileKinds()

	// phase probes status polls every 5 ms for cfg.HostileDuration,
	// sampling RSS every 50 ms, and with attack sends hostile uploads at
	// cfg.HostileRate (at most 8 in flight).
	type outcome struct {
		lat      []time.Duration
		probeErr int
		rssMax   int64
		sent     int
		skipped  int
		got      map[string]map[string]int // kind → answer → count
	}
	phase := func(attack bool) outcome {
		var o outcome
		o.got = map[string]map[string]int{}
		pctx, cancel := context.WithTimeout(ctx, cfg.HostileDuration)
		defer cancel()
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
				t0 := time.Now()
				if _, err := c.status(pctx, probes[i%len(probes)], 0); err != nil {
					if pctx.Err() == nil {
						o.probeErr++
					}
					continue
				}
				o.lat = append(o.lat, time.Since(t0))
			}
		})
		var rssMax atomic.Int64
		wg.Go(func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				if rss, _, err := srv.RSS(); err == nil && rss > rssMax.Load() {
					rssMax.Store(rss)
				}
				select {
				case <-pctx.Done():
					return
				case <-t.C:
				}
			}
		})
		if attack {
			var mu, activeMu sync.Mutex
			sem := make(chan struct{}, 8)
			var aw sync.WaitGroup
			t := time.NewTicker(time.Duration(float64(time.Second) / cfg.HostileRate))
		loop:
			for i := 0; ; i++ {
				select {
				case <-pctx.Done():
					break loop
				case <-t.C:
				}
				select {
				case sem <- struct{}{}:
				default:
					o.skipped++
					continue
				}
				o.sent++
				k := kinds[i%len(kinds)]
				aw.Go(func() {
					defer func() { <-sem }()
					sid := holder.SessionID
					if !k.waiting && !k.noHeader {
						// One lab call at a time per session, as a
						// client makes them (the server answers a
						// concurrent one 409 without reading it).
						activeMu.Lock()
						defer activeMu.Unlock()
					}
					if k.waiting {
						sid = waiter.SessionID
					} else if k.noHeader {
						sid = ""
					}
					rctx, cancel := context.WithTimeout(ctx, time.Minute)
					defer cancel()
					_, err := a.acquire(rctx, sid, k.u)
					answer := "200 accepted"
					if code := statusOf(err); code != 0 {
						answer = fmt.Sprint(code)
					} else if err != nil {
						answer = "closed: " + classify(err)
					}
					mu.Lock()
					defer mu.Unlock()
					if o.got[k.name] == nil {
						o.got[k.name] = map[string]int{}
					}
					o.got[k.name][answer]++
				})
			}
			t.Stop()
			aw.Wait()
		}
		wg.Wait()
		o.rssMax = rssMax.Load()
		return o
	}

	base := phase(false)
	left0 := srv.Leftovers()
	att := phase(true)

	r.add("status poll latency, quiet (200/s, 20 waiting sessions)", "%s", summarize(base.lat))
	r.add("status poll latency, under hostile uploads", "%s", summarize(att.lat))
	r.add("hostile uploads", "%d sent in %s (%.0f/s scheduled, %d ticks skipped: 8 in flight)",
		att.sent, cfg.HostileDuration, cfg.HostileRate, att.skipped)
	r.add("server RSS", "max %s quiet → max %s under hostile uploads (bound +%d MiB)",
		fmtMiB(base.rssMax), fmtMiB(att.rssMax), cfg.RSSBound)
	if base.probeErr+att.probeErr > 0 {
		r.violate("%d status polls of waiting sessions failed", base.probeErr+att.probeErr)
	}
	if grow := att.rssMax - base.rssMax; grow > cfg.RSSBound<<20 {
		r.violate("server RSS grew by %s under hostile uploads (bound %d MiB)", fmtMiB(grow), cfg.RSSBound)
	}
	for _, k := range kinds {
		got := att.got[k.name]
		var parts []string
		for _, ans := range slices.Sorted(maps.Keys(got)) {
			parts = append(parts, fmt.Sprintf("%s × %d", ans, got[ans]))
			ok := strings.HasPrefix(ans, "closed") && k.closeOK
			for _, w := range k.want {
				ok = ok || ans == fmt.Sprint(w)
			}
			if !ok {
				r.violate("%s: answered %s %d times, want %v", k.name, ans, got[ans], k.want)
			}
		}
		if len(parts) > 0 {
			r.add("  "+k.name, "%s", strings.Join(parts, ", "))
		}
	}
	// Spooled uploads are gone once their request is answered, or soon
	// after one the server cut off by closing the connection. The check
	// ends as soon as they are; a loaded machine gets 20 s.
	var extra []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		extra = nil
		for _, p := range srv.Leftovers() {
			if !slices.Contains(left0, p) {
				extra = append(extra, p)
			}
		}
		if len(extra) == 0 || time.Now().After(deadline) || clock.Sleep(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	if len(extra) > 0 {
		r.violate("uploads left behind in TMPDIR: %v", extra)
	}
	// The active session still works.
	if _, err := c.acquire(ctx, holder.SessionID, upload{Topo: topologyYAML(3, "after")}); err != nil {
		r.violate("valid acquire after the hostile phase: %v", err)
	}
	return nil
}
