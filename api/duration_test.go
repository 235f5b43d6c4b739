package api_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/remotelab-go/remotelab/api"
)

func TestParseDuration(t *testing.T) {
	const (
		want     = "want seconds (30, 2.5) or a Go duration (90s, 10m)"
		negative = "must not be negative"
		tooLarge = "too large (the limit is 2562047h47m16.854775807s)"
	)
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string // "" for success
	}{
		// Plain seconds, decimal.
		{in: "0", want: 0},
		{in: "30", want: 30 * time.Second},
		{in: "2.5", want: 2500 * time.Millisecond},
		{in: ".5", want: 500 * time.Millisecond},
		{in: "5.", want: 5 * time.Second},
		{in: "007", want: 7 * time.Second},
		{in: "0.000000001", want: time.Nanosecond},
		{in: "0.0000000001", want: 0}, // below a nanosecond
		{in: "9223372036.854775807", want: math.MaxInt64},
		{in: "9223372036.854775808", err: tooLarge},
		{in: "1" + strings.Repeat("0", 30), err: tooLarge},
		// Go durations.
		{in: "0s", want: 0},
		{in: "90s", want: 90 * time.Second},
		{in: "10m", want: 10 * time.Minute},
		{in: "1m30s", want: 90 * time.Second},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "3us", want: 3 * time.Microsecond},
		{in: "3µs", want: 3 * time.Microsecond},
		{in: "3μs", want: 3 * time.Microsecond},
		{in: "2562047h47m16.854775807s", want: math.MaxInt64},
		{in: "2562047h47m16.854775808s", err: tooLarge},
		{in: "9999999999h", err: tooLarge},
		// Negative.
		{in: "-1", err: negative},
		{in: "-0.5", err: negative},
		{in: "-1s", err: negative},
		{in: "-0s", err: negative},
		// Neither spelling.
		{in: "", err: want},
		{in: ".", err: want},
		{in: "s", err: want},
		{in: ".s", err: want},
		{in: "-", err: want},
		{in: "--1", err: want},
		{in: "+1", err: want},
		{in: "+1s", err: want},
		{in: " 30", err: want},
		{in: "30 ", err: want},
		{in: "1 s", err: want},
		{in: "soon", err: want},
		{in: "1d", err: want},
		{in: "1e3", err: want},
		{in: "0x10", err: want},
		{in: "1_000", err: want},
		{in: "NaN", err: want},
		{in: "nan", err: want},
		{in: "Inf", err: want},
		{in: "+Inf", err: want},
		{in: "-Inf", err: want},
		{in: "infinity", err: want},
		{in: "1.2.3", err: want},
		{in: "1s2", err: want},
		{in: "٣", err: want}, // a digit, but not an ASCII one
	} {
		d, err := api.ParseDuration(tc.in)
		if tc.err == "" {
			if assert.NoError(t, err, "%q", tc.in) {
				assert.Equal(t, tc.want, d, "%q", tc.in)
			}
			continue
		}
		assert.EqualError(t, err, fmt.Sprintf("parse duration %q: %s", tc.in, tc.err))
		assert.Zero(t, d, "%q", tc.in)
	}
}

// FuzzParseDuration checks ParseDuration's promises on any input: it
// never panics, a result is never negative, an error names the input,
// and a plain number of seconds it accepts is that number (within float
// rounding) while one it calls too large is indeed out of range.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30", "2.5", ".5", "90s", "1m30s", "-1", "NaN", "Inf", "1e3",
		"9223372036.854775808", "2562047h47m16.854775807s", "3µs", "", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := api.ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Errorf("ParseDuration(%q) = %v with error %v, want 0", s, d, err)
			}
			if prefix := fmt.Sprintf("parse duration %q: ", s); !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		} else if d < 0 {
			t.Errorf("ParseDuration(%q) = %v, negative", s, d)
		}
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || strings.ContainsAny(s, "eEpPxX_nNiI+-") {
			return // not a plain decimal number of seconds
		}
		ns := f * float64(time.Second)
		switch {
		case err == nil:
			if diff := math.Abs(float64(d) - ns); diff > 1+ns*1e-15 {
				t.Errorf("ParseDuration(%q) = %v, want about %g ns", s, d, ns)
			}
		case strings.HasSuffix(err.Error(), "too large (the limit is 2562047h47m16.854775807s)"):
			if ns < math.MaxInt64*(1-1e-15) {
				t.Errorf("ParseDuration(%q): %v, but %g ns is in range", s, err, ns)
			}
		default:
			t.Errorf("ParseDuration(%q) of plain seconds: %v", s, err)
		}
	})
}

// FuzzParseDurationRoundTrip checks that every non-negative duration
// parses back from both spellings: its Go form (Duration.String) and
// plain seconds with nine decimals.
func FuzzParseDurationRoundTrip(f *testing.F) {
	for _, n := range []int64{0, 1, 999, 1e9, 1500 * 1e6, 90 * 1e9, math.MaxInt64} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if n < 0 {
			n = -(n + 1) // every non-negative value, MaxInt64 included
		}
		want := time.Duration(n)
		for _, s := range []string{want.String(), fmt.Sprintf("%d.%09d", n/1e9, n%1e9)} {
			d, err := api.ParseDuration(s)
			if err != nil || d != want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, d, err, want)
			}
		}
	})
}
