package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0s",
		400 * time.Millisecond:                "0s",
		12 * time.Second:                      "12s",
		59*time.Second + 600*time.Millisecond: "1m",
		4*time.Minute + 12*time.Second:        "4m12s",
		10 * time.Minute:                      "10m",
		time.Hour + 3*time.Minute + 20*time.Second:  "1h3m",
		time.Hour + 59*time.Minute + 40*time.Second: "2h",
		2 * time.Hour:     "2h",
		51 * time.Hour:    "2d3h",
		48 * time.Hour:    "2d",
		-90 * time.Second: "1m30s",
	} {
		assert.Equal(t, want, human(d), "%v", d)
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, "2m ago", ago(now.Add(-2*time.Minute), now))
	assert.Equal(t, "in 5m", ago(now.Add(5*time.Minute), now))
	assert.Equal(t, "just now", ago(now.Add(-300*time.Millisecond), now))
	assert.Equal(t, "1h3m ago", ago(now.Add(-63*time.Minute), now))
}

func TestLabelsText(t *testing.T) {
	assert.Equal(t, "-", labelsText(nil))
	assert.Equal(t, "a=1,job=https://ci/1", labelsText(map[string]string{"job": "https://ci/1", "a": "1"}))
}

func TestTableCleansCells(t *testing.T) {
	var b strings.Builder
	tb := newTable(&b, "A", "B")
	tb.row("x\ty", "multi\nline")
	tb.flush()
	assert.Equal(t, "A    B\nx y  multi line\n", b.String())
}

func TestOneLine(t *testing.T) {
	assert.Equal(t, "a b c", oneLine(" a\n b\tc ", 10))
	assert.Equal(t, "abcd…", oneLine("abcdefgh", 5))
}
