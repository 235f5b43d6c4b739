package queue_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// Small stdlib assertion helpers. Each takes an optional message
// (format string and arguments). The fatal ones stop the test.

func msg(m []any) string {
	if len(m) == 0 {
		return ""
	}
	if f, ok := m[0].(string); ok {
		return fmt.Sprintf(f, m[1:]...) + ": "
	}
	return fmt.Sprint(m...) + ": "
}

func equal(t testing.TB, want, got any, m ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%snot equal\nwant: %+v\n got: %+v", msg(m), want, got)
	}
}

func mustNoErr(t testing.TB, err error, m ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%sunexpected error: %v", msg(m), err)
	}
}

func isErr(t testing.TB, err, target error, m ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%sgot error %v, want %v", msg(m), err, target)
	}
}

func isTrue(t testing.TB, cond bool, m ...any) {
	t.Helper()
	if !cond {
		t.Errorf("%swant true", msg(m))
	}
}

func isFalse(t testing.TB, cond bool, m ...any) {
	t.Helper()
	if cond {
		t.Errorf("%swant false", msg(m))
	}
}

func mustTrue(t testing.TB, cond bool, m ...any) {
	t.Helper()
	if !cond {
		t.Fatalf("%swant true", msg(m))
	}
}

func mustFalse(t testing.TB, cond bool, m ...any) {
	t.Helper()
	if cond {
		t.Fatalf("%swant false", msg(m))
	}
}

func isZero(t testing.TB, v any, m ...any) {
	t.Helper()
	if !reflect.ValueOf(v).IsZero() {
		t.Errorf("%sgot %+v, want zero", msg(m), v)
	}
}

func lenIs(t testing.TB, v any, n int, m ...any) {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != n {
		t.Errorf("%sgot length %d, want %d", msg(m), l, n)
	}
}

func mustLen(t testing.TB, v any, n int, m ...any) {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != n {
		t.Fatalf("%sgot length %d, want %d", msg(m), l, n)
	}
}

func panics(t testing.TB, f func(), m ...any) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%sdid not panic", msg(m))
		}
	}()
	f()
}
