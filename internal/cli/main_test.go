package cli

import (
	"os"
	"testing"
)

// TestMain lets the tests run this test binary as the eunomia command: a
// real, separate server process.
func TestMain(m *testing.M) {
	if os.Getenv("EUNOMIA_TEST_AS_CLI") == "1" {
		os.Exit(Execute())
	}
	os.Exit(m.Run())
}
