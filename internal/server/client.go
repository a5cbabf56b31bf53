package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/eunomia-agent/eunomia/internal/pipeline"
)

// ClientOptions say how to reach a server.
type ClientOptions struct {
	// Socket is the server's unix socket (default DefaultSocket); used
	// unless Server is set.
	Socket string
	// Server is an http:// or https:// URL of the server's TCP listener.
	Server string
	// TokenFile holds the bearer token to send.
	TokenFile string
	// CACert is a PEM file of the CA (or self-signed certificate) that
	// signed an https server's certificate; default: the system's CAs.
	CACert string
	// Timeout bounds each request (default 30 s).
	Timeout time.Duration
}

// Client talks to a server's API.
type Client struct {
	base  string
	where string // for error messages
	token string
	hc    *http.Client
}

// NewClient makes a client.
func NewClient(o ClientOptions) (*Client, error) {
	c := &Client{}
	if o.TokenFile != "" {
		tok, err := ReadTokenFile(o.TokenFile)
		if err != nil {
			return nil, err
		}
		c.token = tok
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	if o.Server != "" {
		u, err := url.Parse(o.Server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--server: %q is not an http:// or https:// URL with a host", o.Server)
		}
		if u.Scheme == "https" && o.CACert != "" {
			pem, err := os.ReadFile(o.CACert)
			if err != nil {
				return nil, fmt.Errorf("--ca-cert: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca-cert: %s holds no PEM certificate", o.CACert)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		if u.Scheme == "http" && c.token != "" && !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("--server: refusing to send the token in clear text to %s; use https", u.Host)
		}
		c.base = strings.TrimSuffix(u.String(), "/")
		c.where = c.base
	} else {
		sock := o.Socket
		if sock == "" {
			sock = DefaultSocket
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}
		c.base = "http://eunomia"
		c.where = sock
	}
	c.hc = &http.Client{Transport: tr, Timeout: timeout}
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// APIError is an answer with an error status.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("server: %s: %s", http.StatusText(e.Status), e.Message)
}

// Do sends a request and decodes a JSON answer into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		hint := ""
		if strings.HasPrefix(c.where, "/") {
			hint = " (is `eunomia server` running, and are you root?)"
		}
		return fmt.Errorf("cannot reach the server at %s: %w%s", c.where, errors.Unwrap(err), hint)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		var e ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

// Start starts a tracker instance.
func (c *Client) Start(ctx context.Context, spec pipeline.Spec) (TrackerInfo, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return TrackerInfo{}, err
	}
	var info TrackerInfo
	err = c.Do(ctx, http.MethodPost, "/v1/trackers", body, &info)
	return info, err
}

// Stop stops an instance and returns its final counts.
func (c *Client) Stop(ctx context.Context, id uint64) (TrackerInfo, error) {
	var info TrackerInfo
	err := c.Do(ctx, http.MethodDelete, "/v1/trackers/"+strconv.FormatUint(id, 10), nil, &info)
	return info, err
}

// Get returns one running instance.
func (c *Client) Get(ctx context.Context, id uint64) (TrackerInfo, error) {
	var info TrackerInfo
	err := c.Do(ctx, http.MethodGet, "/v1/trackers/"+strconv.FormatUint(id, 10), nil, &info)
	return info, err
}

// List returns the running instances.
func (c *Client) List(ctx context.Context) ([]TrackerInfo, error) {
	var l TrackerList
	err := c.Do(ctx, http.MethodGet, "/v1/trackers", nil, &l)
	return l.Trackers, err
}

// Health returns the server's health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.Do(ctx, http.MethodGet, "/healthz", nil, &h)
	return h, err
}
