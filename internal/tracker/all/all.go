// Package all is the one explicit list of tracker kinds the agent ships.
package all

import (
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/files"
	"github.com/eunomia-agent/eunomia/internal/tracker/process"
)

// Registry returns a registry of every tracker kind.
func Registry() *tracker.Registry {
	return tracker.NewRegistry(
		process.Kind,
		files.Kind,
	)
}
