// Command eunomia is the Eunomia eBPF agent.
package main

import (
	"os"

	"github.com/eunomia-agent/eunomia/internal/cli"
)

func main() {
	os.Exit(cli.Execute())
}
