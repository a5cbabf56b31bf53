package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/eunomia-agent/eunomia/internal/config"
	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/metrics"
	"github.com/eunomia-agent/eunomia/internal/server"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

type serverOptions struct {
	configPath string
	socket     string
	listen     string
	tokenFile  string
	tlsCert    string
	tlsKey     string
	prometheus string
	allowRem   bool
	labels     []string
	maxSeries  int
	queueSize  int
	ctrs       containerOptions
}

// serverSettings are the config file's settings with the flags applied.
type serverSettings struct {
	listen     server.ListenOptions
	queueSize  int
	prometheus metrics.Options
	containers containerOptions
}

func newServerCmd() *cobra.Command {
	o := &serverOptions{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run trackers as a service, controlled through an HTTP API",
		Long: "Run the trackers of a config file (if any) and serve an HTTP API to start,\n" +
			"stop and list trackers while the agent runs (see `eunomia start/stop/list`).\n\n" +
			"The API listens on a unix socket with mode 0600 (only root may use it) and,\n" +
			"with --listen, on TCP too, where every request needs the bearer token of\n" +
			"--token-file. Flags override the config file. SIGHUP reloads the config file:\n" +
			"trackers added or removed by the edit start or stop; a file with errors is\n" +
			"rejected and the running trackers stay as they are.",
		Example: "  eunomia server\n" +
			"  eunomia server --config /etc/eunomia/eunomia.yaml\n" +
			"  eunomia server --listen 127.0.0.1:8700 --token-file /etc/eunomia/token --tls-cert c.pem --tls-key k.pem",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, all.Registry())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.configPath, "config", "c", "", "config file (YAML); see docs/server.md")
	f.StringVar(&o.socket, "socket", server.DefaultSocket, "unix socket of the API (created with mode 0600)")
	f.StringVar(&o.listen, "listen", "", "also serve the API on this TCP address (needs --token-file)")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token TCP clients must send")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate (PEM) for the TCP listener")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key (PEM) for the TCP listener")
	f.StringVar(&o.prometheus, "prometheus", "", "also serve /metrics, without a token, on this TCP `ADDR` (loopback only unless --prometheus-allow-remote)")
	f.BoolVar(&o.allowRem, "prometheus-allow-remote", false, "let --prometheus listen on a non-loopback address")
	f.StringSliceVar(&o.labels, "metric-labels", nil, "extra (high-cardinality) labels of the event counters: "+strings.Join(metrics.OptionalLabels, ", "))
	f.IntVar(&o.maxSeries, "metric-max-series", metrics.DefaultMaxSeries, "series per metric; past it new series fold into label value \"other\" (counted)")
	f.StringVar(&o.ctrs.dockerSocket, "docker-socket", container.DockerSocketFromEnv(), "Docker Engine API socket (podman's Docker-compatible socket works too)")
	f.StringVar(&o.ctrs.containerdSocket, "containerd-socket", container.DefaultContainerdSocket, "containerd socket, used when it exists")
	f.BoolVar(&o.ctrs.info, "containers", true, "connect to the container runtimes, for the containers handler and container filters")
	f.IntVar(&o.queueSize, "queue-size", 0, fmt.Sprintf("events buffered per tracker between kernel and handlers; more are dropped and counted (default %d)", tracker.DefaultQueueSize))
	return cmd
}

func (o *serverOptions) run(cmd *cobra.Command, reg *tracker.Registry) error {
	var file *config.File
	if o.configPath != "" {
		// SIGHUP reads it again: the same file even if the cwd changed.
		abs, err := filepath.Abs(o.configPath)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		o.configPath = abs
		if file, err = config.Load(o.configPath, reg); err != nil {
			return err
		}
	}
	set, err := o.settings(cmd, file)
	if err != nil {
		return err
	}
	if err := requireRoot("eunomia server"); err != nil {
		return err
	}
	log := slog.Default()
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Catch SIGHUP before starting anything, so that an early one reloads
	// instead of killing the server.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cs, err := set.containers.setup(ctx, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer cs.Close()
	s, err := server.New(server.Options{
		Registry:   reg,
		ConfigPath: o.configPath,
		Config:     file,
		QueueSize:  set.queueSize,
		Prometheus: withVersion(set.prometheus),
		Containers: cs.mgr,
		Stdout:     cmd.OutOrStdout(),
		Logger:     log,
	})
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := s.Reload(); err != nil {
					log.Error("config reload rejected; the running trackers stay", "err", err)
				} else {
					log.Info("config reloaded", "path", o.configPath, "trackers", len(s.List()))
				}
			}
		}
	}()
	serveErr := s.Serve(ctx, set.listen, func() { log.Info("server ready", "trackers", len(s.List())) })
	return finish(cmd.ErrOrStderr(), s, serveErr)
}

// finish stops the trackers and reports their final counts.
func finish(stderr io.Writer, s *server.Server, serveErr error) error {
	infos, err := s.Close()
	for _, in := range infos {
		fmt.Fprintf(stderr, "eunomia: %s: %d events, %d lost in kernel, %d lost in queue, %d failed in handlers\n",
			in.Tracker, in.Events, in.LostKernel, in.LostQueue, in.Failed)
	}
	if serveErr != nil {
		return serveErr
	}
	return err
}

// settings merges the config file's settings with the flags (flags win)
// and reads the token.
func (o *serverOptions) settings(cmd *cobra.Command, file *config.File) (serverSettings, error) {
	var set serverSettings
	lo := &set.listen
	lo.Socket = o.socket
	set.containers = o.ctrs
	var tokenFile string
	if file != nil {
		fs := file.Server
		if fs.Socket != "" {
			lo.Socket = fs.Socket
		}
		lo.Listen, tokenFile, lo.TLSCert, lo.TLSKey = fs.Listen, fs.TokenFile, fs.TLSCert, fs.TLSKey
		lo.MetricsListen, lo.MetricsAllowRemote = file.Prometheus.Listen, file.Prometheus.AllowRemote
		set.prometheus = file.Prometheus.Options()
		set.queueSize = file.QueueSize
		fc := file.Containers
		if fc.Enabled != nil {
			set.containers.info = *fc.Enabled
		}
		if fc.DockerSocket != "" {
			set.containers.dockerSocket = fc.DockerSocket
		}
		if fc.ContainerdSocket != "" {
			set.containers.containerdSocket = fc.ContainerdSocket
		}
	}
	flags := cmd.Flags()
	str := func(name string, dst *string, v string) {
		if flags.Changed(name) {
			*dst = v
		}
	}
	str("socket", &lo.Socket, o.socket)
	str("listen", &lo.Listen, o.listen)
	str("token-file", &tokenFile, o.tokenFile)
	str("tls-cert", &lo.TLSCert, o.tlsCert)
	str("tls-key", &lo.TLSKey, o.tlsKey)
	str("prometheus", &lo.MetricsListen, o.prometheus)
	str("docker-socket", &set.containers.dockerSocket, o.ctrs.dockerSocket)
	str("containerd-socket", &set.containers.containerdSocket, o.ctrs.containerdSocket)
	if flags.Changed("containers") {
		set.containers.info = o.ctrs.info
	}
	if flags.Changed("prometheus-allow-remote") {
		lo.MetricsAllowRemote = o.allowRem
	}
	if flags.Changed("metric-labels") {
		set.prometheus.Labels = o.labels
	}
	if flags.Changed("metric-max-series") {
		if o.maxSeries < 1 {
			return set, fmt.Errorf("--metric-max-series: %d, want at least 1", o.maxSeries)
		}
		set.prometheus.MaxSeries = o.maxSeries
	}
	if err := set.prometheus.Validate(); err != nil {
		return set, fmt.Errorf("--metric-labels: %w", err)
	}
	if flags.Changed("queue-size") {
		if o.queueSize < 1 {
			return set, fmt.Errorf("--queue-size: %d, want at least 1", o.queueSize)
		}
		set.queueSize = o.queueSize
	}
	if tokenFile != "" {
		tok, err := server.ReadTokenFile(tokenFile)
		if err != nil {
			return set, err
		}
		if st, err := os.Stat(tokenFile); err == nil && st.Mode().Perm()&0o077 != 0 {
			slog.Warn("the token file is readable by other users; chmod 600 it", "path", tokenFile)
		}
		lo.Token = tok
	}
	if err := lo.Validate(); err != nil {
		return set, err
	}
	return set, nil
}

func withVersion(o metrics.Options) metrics.Options {
	o.Version = Version
	return o
}
