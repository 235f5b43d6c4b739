package auth_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/remotelab-go/remotelab/auth"
)

// benchTable returns a table of n tokens and the last token.
func benchTable(b *testing.B, n int) (*auth.Table, string) {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("tokens:\n")
	var tok string
	for i := range n {
		var err error
		if tok, err = auth.NewToken(); err != nil {
			b.Fatal(err)
		}
		sb.WriteString(auth.Entry(fmt.Sprintf("user%d", i), auth.User, tok))
	}
	t, err := auth.Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return t, tok
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 1000} {
		table, tok := benchTable(b, n)
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, ok := table.Lookup(tok); !ok {
					b.Fatal("token unknown")
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("tokens:\n")
	for i := range 100 {
		sb.WriteString(auth.Entry(fmt.Sprintf("user%d", i), auth.User, fmt.Sprint("token", i)))
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := auth.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
