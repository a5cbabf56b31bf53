package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/metrics"
)

// DefaultSocket is where the API listens unless told otherwise.
const DefaultSocket = "/run/eunomia/eunomia.sock"

// ListenOptions say where the API listens.
type ListenOptions struct {
	// Socket is the unix socket path (required).
	Socket string
	// Listen is a TCP address to serve the API on too; it needs Token.
	Listen string
	// Token is the bearer token TCP clients must send.
	Token string
	// TLSCert and TLSKey, both or neither, make the TCP listener TLS.
	TLSCert, TLSKey string
	// MetricsListen is a TCP address serving only /metrics, without a
	// token (for a Prometheus server); loopback only unless
	// MetricsAllowRemote.
	MetricsListen      string
	MetricsAllowRemote bool
}

// Validate checks that the options go together.
func (o ListenOptions) Validate() error {
	if o.Socket == "" {
		return errors.New("--socket: empty path")
	}
	if o.Listen != "" && o.Token == "" {
		return errors.New("--listen needs --token-file: a TCP listener without a token would let anyone who reaches it start tracers")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if o.TLSCert != "" && o.Listen == "" {
		return errors.New("--tls-cert and --tls-key apply to the TCP listener: give --listen too")
	}
	if o.MetricsListen != "" {
		if err := metrics.CheckAddr(o.MetricsListen, o.MetricsAllowRemote); err != nil {
			return fmt.Errorf("--prometheus: %w", err)
		}
	}
	return nil
}

// Serve serves the API until ctx is done, then shuts the listeners down
// (in-flight requests get 5 s) and returns. ready, if not nil, is called
// once every listener is open. Serve does not stop the trackers: call
// Close afterwards.
func (s *Server) Serve(ctx context.Context, o ListenOptions, ready func()) error {
	if err := o.Validate(); err != nil {
		return err
	}
	type listener struct {
		l net.Listener
		h http.Handler
	}
	var ls []listener
	closeAll := func() {
		for _, x := range ls {
			x.l.Close()
		}
	}
	ul, err := ListenUnix(o.Socket)
	if err != nil {
		return err
	}
	ls = append(ls, listener{ul, s.Handler()})
	if o.Listen != "" {
		tl, err := net.Listen("tcp", o.Listen)
		if err != nil {
			closeAll()
			return fmt.Errorf("--listen: %w", err)
		}
		if o.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
			if err != nil {
				tl.Close()
				closeAll()
				return fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			tl = tls.NewListener(tl, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		}
		ls = append(ls, listener{tl, RequireToken(o.Token, s.Handler())})
		s.log.Info("API listening on TCP", "addr", tl.Addr().String(), "tls", o.TLSCert != "")
	}
	if o.MetricsListen != "" {
		ms, err := metrics.Serve(o.MetricsListen, o.MetricsAllowRemote, s.stats.handler)
		if err != nil {
			closeAll()
			return fmt.Errorf("--prometheus: %w", err)
		}
		defer ms.Close()
		s.log.Info("metrics listening", "addr", ms.Addr())
	}
	s.log.Info("API listening on unix socket", "path", o.Socket)

	errc := make(chan error, len(ls))
	var servers []*http.Server
	for _, x := range ls {
		hs := &http.Server{
			Handler:           x.h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		}
		servers = append(servers, hs)
		go func(l net.Listener) { errc <- hs.Serve(l) }(x.l)
	}
	if ready != nil {
		ready()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, hs := range servers {
		hs.Shutdown(shutdown)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// ListenUnix listens on a unix socket at path that only the owner (root)
// may connect to. The socket is created with mode 0600 from the start (the
// mode is set on the socket before bind gives it a name), so there is no
// moment when others could connect. A stale socket nobody answers on is
// replaced; a live one is an error.
func ListenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("socket directory: %w", err)
		}
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("socket %s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another server is listening there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket %s: remove stale socket: %w", path, err)
		}
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = unix.Fchmod(int(fd), 0o600) }); cerr != nil {
			return cerr
		}
		return err
	}}
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		l.Close()
		if err == nil {
			err = fmt.Errorf("mode %v, want 0600", st.Mode().Perm())
		}
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return l, nil
}

// ReadTokenFile reads a bearer token: the file's content less surrounding
// white space, at least 16 printable characters without spaces.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("token file %s: the token is %d characters, use at least 16 (e.g. head -c 32 /dev/urandom | base64 > %s)", path, len(tok), path)
	}
	for _, c := range []byte(tok) {
		if c <= ' ' || c >= 0x7f {
			return "", fmt.Errorf("token file %s: the token must be printable ASCII without spaces or line breaks", path)
		}
	}
	return tok, nil
}
