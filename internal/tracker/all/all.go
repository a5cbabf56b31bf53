// Package all is the one explicit list of tracker kinds the agent ships.
package all

import (
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/files"
	"github.com/eunomia-agent/eunomia/internal/tracker/ipc"
	"github.com/eunomia-agent/eunomia/internal/tracker/process"
	"github.com/eunomia-agent/eunomia/internal/tracker/syscall"
	"github.com/eunomia-agent/eunomia/internal/tracker/tcp"
)

// Registry returns a registry of every tracker kind.
func Registry() *tracker.Registry {
	return tracker.NewRegistry(
		files.Kind,
		ipc.Kind,
		process.Kind,
		syscall.Kind,
		tcp.Kind,
	)
}
