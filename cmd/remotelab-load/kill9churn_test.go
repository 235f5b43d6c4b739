package main

import (
	"slices"
	"testing"
	"time"
)

// TestRestoredCheck feeds the kill9churn checks made-up restarts, one
// fault each, and a clean one.
func TestRestoredCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// a, b, c were created one after the other; d and e at the same time.
	a := &ledgerEntry{id: "aaaaaaaa-1", sent: at(0), acked: at(1)}
	b := &ledgerEntry{id: "bbbbbbbb-1", sent: at(2), acked: at(3)}
	c := &ledgerEntry{id: "cccccccc-1", sent: at(4), acked: at(5), deleteSent: true, deleteAcked: true}
	d := &ledgerEntry{id: "dddddddd-1", sent: at(6), acked: at(9)}
	e := &ledgerEntry{id: "eeeeeeee-1", sent: at(7), acked: at(8), deleteSent: true}
	clean := func() restored {
		return restored{
			sessions: []*ledgerEntry{a, b, c, d, e},
			present:  map[string]bool{a.id: true, b.id: true, d.id: true},
			order:    []string{"aaaaaaaa", "bbbbbbbb", "dddddddd"},
			snapshot: []string{"aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd", "eeeeeeee"},
			holder:   "aaaaaaaa", holderEpoch: 7, before: 7, beforeID: a.id,
		}
	}
	kinds := func(fs []finding) []string {
		var k []string
		for _, f := range fs {
			k = append(k, f.kind)
		}
		return k
	}
	if got := clean().check(); len(got) != 0 {
		t.Fatalf("clean restart: %v", got)
	}
	// e's deletion was sent but not acknowledged: both outcomes pass.
	withE := clean()
	withE.present[e.id] = true
	withE.order = append(withE.order, "eeeeeeee")
	// d and e were concurrent: either order passes (not in the snapshot).
	withE.snapshot = withE.snapshot[:3]
	if got := withE.check(); len(got) != 0 {
		t.Errorf("unacknowledged delete kept: %v", got)
	}
	swappedDE := withE
	swappedDE.order = []string{"aaaaaaaa", "bbbbbbbb", "eeeeeeee", "dddddddd"}
	if got := swappedDE.check(); len(got) != 0 {
		t.Errorf("concurrent creations swapped: %v", got)
	}
	for name, tc := range map[string]struct {
		change func(*restored)
		want   []string
	}{
		"lost": {func(x *restored) {
			x.order = []string{"aaaaaaaa", "dddddddd"}
			x.present[b.id] = false
		}, []string{"lost"}},
		"found but not listed": {func(x *restored) { x.order = []string{"aaaaaaaa", "dddddddd"} }, []string{"lost"}},
		"undeleted": {func(x *restored) {
			x.order = []string{"aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd"}
			x.present[c.id] = true
		}, []string{"undeleted"}},
		"duplicated": {func(x *restored) { x.order = append(x.order, "bbbbbbbb") }, []string{"duplicated", "order", "order"}},
		"out of order": {func(x *restored) { x.order = []string{"aaaaaaaa", "dddddddd", "bbbbbbbb"} },
			[]string{"order", "order"}},
		"holder": {func(x *restored) {
			x.order = []string{"bbbbbbbb", "aaaaaaaa", "dddddddd"}
			x.holder = "bbbbbbbb"
			x.holderEpoch = 8
		}, []string{"holder", "order"}},
		"snapshot order": {func(x *restored) {
			// Concurrent by their answers, but the snapshot saw d first.
			x.order = []string{"aaaaaaaa", "bbbbbbbb", "eeeeeeee", "dddddddd"}
			x.present[e.id] = true
		}, []string{"order"}},
		"epoch went back": {func(x *restored) { x.holderEpoch = 6 }, []string{"epoch"}},
		"epoch reused": {func(x *restored) {
			x.order = []string{"bbbbbbbb", "dddddddd"}
			x.present[a.id] = false
			a2 := *a
			a2.deleteSent, a2.deleteAcked = true, true
			x.sessions = []*ledgerEntry{&a2, b, c, d, e}
			x.holder = "bbbbbbbb"
		}, []string{"epoch"}},
	} {
		x := clean()
		tc.change(&x)
		got := kinds(x.check())
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: findings %v, want %v (%v)", name, got, tc.want, x.check())
		}
	}
}
