package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain runs the child roles (the harness re-executes the test binary
// for them) and checks for leaked goroutines.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	goleak.VerifyTestMain(m)
}

// TestShortSuite runs every scenario with tiny sizes against a remotelabd
// built without -race (about 25 s) and fails on any violation: FIFO
// order, lost or duplicated promotions, goroutines not back to baseline,
// a client without a clear error at SIGTERM, leftovers, wrong answers to
// hostile uploads, memory beyond the bound. It asserts no timings.
func TestShortSuite(t *testing.T) {
	var out bytes.Buffer
	cfg := tinyConfig()
	cfg.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := runSuite(ctx, cfg)
	if err != nil {
		t.Fatalf("run suite: %v\n%s", err, out.String())
	}
	rep.print(&out, false)
	t.Log("\n" + out.String())
	for _, v := range rep.violations {
		t.Error(v)
	}
	ran := map[string]bool{}
	for _, r := range rep.rows {
		ran[r.scenario] = true
	}
	for _, name := range scenarioNames() {
		if !ran[name] {
			t.Errorf("scenario %s reported nothing", name)
		}
	}
}

func TestRunRejectsUnknownScenario(t *testing.T) {
	cfg := tinyConfig()
	cfg.Out = &bytes.Buffer{}
	cfg.Run = "promotion-longpoll,nosuch"
	_, err := runSuite(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("runSuite with an unknown scenario: err = %v, want one naming it", err)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, x := range n {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	tests := []struct {
		sample []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 100, 4 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sample, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.sample, tt.p, got, tt.want)
		}
	}
	// 1..100 ms in reverse: summarize sorts.
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	got := summarize(s)
	if got.N != 100 || got.P50 != 50*time.Millisecond || got.P99 != 99*time.Millisecond ||
		got.Max != 100*time.Millisecond || got.Mean != 50500*time.Microsecond {
		t.Errorf("summarize(1..100ms) = %+v", got)
	}
	if s[0] != 100*time.Millisecond {
		t.Error("summarize modified its input")
	}
}

func TestShortFlagKeepsExplicitSizes(t *testing.T) {
	got, err := parseConfig([]string{"-handovers", "7", "-short", "-md"})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Markdown {
		t.Error("explicit -md lost")
	}
	if got.Handovers != 7 {
		t.Errorf("explicit -handovers lost: %d", got.Handovers)
	}
	if got.Scale != shortConfig().Scale {
		t.Errorf("-short scale = %d, want %d", got.Scale, shortConfig().Scale)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]config{"full": fullConfig(), "short": shortConfig(), "tiny": tinyConfig()} {
		if err := cfg.validate(); err != nil {
			t.Errorf("%s config: %v", name, err)
		}
	}
	for _, tc := range []struct {
		change func(*config)
		want   string
	}{
		{func(c *config) { c.Waiters = 0 }, "-waiters"},
		{func(c *config) { c.HostileRate = 0 }, "-hostile-rate"},
		{func(c *config) { c.Sources = 300 }, "-sources"},
		{func(c *config) { c.LongPoll = 0 }, "-long-poll"},
		{func(c *config) { c.Hold = -time.Second }, "-hold"},
		{func(c *config) { c.KillTTL = killTTLMargin*holdHeartbeat - 1 }, "-kill-ttl"},
	} {
		cfg := shortConfig()
		tc.change(&cfg)
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validate: err = %v, want one naming %s", err, tc.want)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	// Both fail before building or starting anything.
	if code := run([]string{"-h"}); code != 0 {
		t.Errorf("run -h = %d, want 0", code)
	}
	if code := run([]string{"-short", "-waiters", "0"}); code != 2 {
		t.Errorf("run -short -waiters 0 = %d, want 2", code)
	}
}
