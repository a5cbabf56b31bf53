package server

import (
	"errors"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

func mustSpec(t *testing.T, reg *tracker.Registry, body string) pipeline.Spec {
	t.Helper()
	s, err := pipeline.DecodeSpecJSON(reg, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
