package bpfrt

import (
	"strings"
	"testing"
)

func TestArenaStringsAreIndependentCopies(t *testing.T) {
	var a Arena
	src := []byte("hello")
	s := a.String(src)
	src[0] = 'j'
	if s != "hello" {
		t.Fatalf("arena string changed with its source: %q", s)
	}
	var got []string
	for i := 0; i < 20000; i++ { // spans several blocks
		got = append(got, a.String([]byte(strings.Repeat("x", i%50))))
	}
	for i, s := range got {
		if s != strings.Repeat("x", i%50) {
			t.Fatalf("string %d corrupted: %q", i, s)
		}
	}
	big := a.String(make([]byte, arenaBytes))
	if len(big) != arenaBytes {
		t.Fatal("large string truncated")
	}
}

func TestArenaSlicesDoNotOverlap(t *testing.T) {
	var a Arena
	x := a.Strings(3)
	y := a.Strings(2)
	x = append(x, "grow") // must not write into y
	y[0] = "y0"
	if len(x) != 4 || x[0] != "" || y[0] != "y0" || y[1] != "" {
		t.Fatalf("x=%q y=%q", x, y)
	}
	if a.Strings(0) != nil {
		t.Error("Strings(0) not nil")
	}
}
