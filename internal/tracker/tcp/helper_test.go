package tcp

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The tests connect from a child process (this test binary re-run as
// TestHelperTCP): the tracked task must not be the test itself, and each
// test matches events by its own child's pid.
//
// Environment of the helper:
//
//	EUNOMIA_TCP_HELPER  connect | listen
//	EUNOMIA_TCP_ADDR    address to connect to or listen on (ip:port)
//	EUNOMIA_TCP_MAPPED  1: connect from an IPv6 socket to the v4-mapped form of ADDR
//	EUNOMIA_TCP_N       connects to make (default 1)
//	EUNOMIA_TCP_SEND    bytes to send after connecting, then read EUNOMIA_TCP_RECV bytes
//	EUNOMIA_TCP_RECV
//	EUNOMIA_TCP_PORTS   further ports (comma-separated) of ADDR's host to connect to first
//	EUNOMIA_TCP_WAIT    1: read a line from standard input before connecting
//	EUNOMIA_TCP_SYNCNT  SYN retries before a connect times out (TCP_SYNCNT)
//	EUNOMIA_TCP_UID     switch to this user id before connecting
//
// It prints one line per connect: "ok PORT" (the local port) or "err ERRNO
// PORT".
// In listen mode it prints "port PORT", accepts one connection and reads it
// to its end.
func TestHelperTCP(t *testing.T) {
	mode := os.Getenv("EUNOMIA_TCP_HELPER")
	if mode == "" {
		t.Skip("helper for the tcp tests")
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	addr := netip.MustParseAddrPort(os.Getenv("EUNOMIA_TCP_ADDR"))
	switch mode {
	case "connect":
		n := envInt("EUNOMIA_TCP_N", 1)
		send, recv := envInt("EUNOMIA_TCP_SEND", 0), envInt("EUNOMIA_TCP_RECV", 0)
		mapped := os.Getenv("EUNOMIA_TCP_MAPPED") == "1"
		if uid := envInt("EUNOMIA_TCP_UID", -1); uid >= 0 {
			if err := syscall.Setuid(uid); err != nil {
				fmt.Fprintln(out, "err setuid", err)
				return
			}
		}
		if os.Getenv("EUNOMIA_TCP_WAIT") == "1" {
			bufio.NewReader(os.Stdin).ReadString('\n')
		}
		if ports := os.Getenv("EUNOMIA_TCP_PORTS"); ports != "" {
			for _, p := range strings.Split(ports, ",") {
				port, _ := strconv.Atoi(p)
				fmt.Fprintln(out, connectOnce(netip.AddrPortFrom(addr.Addr(), uint16(port)), mapped, 0, 0))
			}
		}
		for i := 0; i < n; i++ {
			fmt.Fprintln(out, connectOnce(addr, mapped, send, recv))
		}
	case "listen":
		ln, err := net.Listen("tcp", addr.String())
		if err != nil {
			fmt.Fprintln(out, "err", err)
			return
		}
		defer ln.Close()
		fmt.Fprintln(out, "port", ln.Addr().(*net.TCPAddr).Port)
		out.Flush()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		c.Close()
	}
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

// connectOnce makes one blocking connect with plain system calls (so that
// the socket's family is exactly what the test asks for), optionally sends
// and receives, and closes with a reset (SO_LINGER 0) so that thousands of
// connects leave no TIME_WAIT sockets behind.
func connectOnce(addr netip.AddrPort, mapped bool, send, recv int) string {
	var sa unix.Sockaddr
	family := unix.AF_INET
	switch {
	case addr.Addr().Is4() && !mapped:
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	default:
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "err " + unix.ErrnoName(err.(unix.Errno))
	}
	defer unix.Close(fd)
	if n := envInt("EUNOMIA_TCP_SYNCNT", 0); n > 0 {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_SYNCNT, n)
	}
	cerr := unix.Connect(fd, sa)
	// The local port, also after a failed connect (the kernel keeps it).
	local, err := unix.Getsockname(fd)
	if err != nil {
		return "err getsockname"
	}
	port := 0
	switch l := local.(type) {
	case *unix.SockaddrInet4:
		port = l.Port
	case *unix.SockaddrInet6:
		port = l.Port
	}
	if cerr != nil {
		if errno, ok := cerr.(unix.Errno); ok {
			return "err " + unix.ErrnoName(errno) + " " + strconv.Itoa(port)
		}
		return "err " + cerr.Error()
	}
	if send > 0 {
		if _, err := unix.Write(fd, make([]byte, send)); err != nil {
			return "err write"
		}
	}
	buf := make([]byte, 4096)
	for got := 0; got < recv; {
		n, err := unix.Read(fd, buf)
		if err != nil || n == 0 {
			return "err read"
		}
		got += n
	}
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	return "ok " + strconv.Itoa(port)
}

// helper runs the helper with env and returns its pid and output lines.
func helper(t testing.TB, env ...string) (int, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTCP$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %v: %v: %s", env, err, out)
	}
	return cmd.Process.Pid, helperLines(out)
}

func helperLines(out []byte) []string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "err ") || strings.HasPrefix(l, "port ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// localPort parses an "ok PORT" line.
func localPort(t testing.TB, line string) uint16 {
	t.Helper()
	var port uint16
	if _, err := fmt.Sscanf(line, "ok %d", &port); err != nil || port == 0 {
		t.Fatalf("helper said %q, want ok PORT", line)
	}
	return port
}

// listener accepts connections and, for each, reads reply-trigger bytes and
// answers: it serves the connecting child until the test ends.
type listener struct {
	ln   net.Listener
	port uint16
}

// listen starts a loopback listener in the test process. Each accepted
// connection is read until the peer has sent want bytes, answered with
// reply bytes, then read to its end.
func listen(t testing.TB, network, address string, want, reply int) *listener {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, address, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for got := 0; got < want; {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					got += n
				}
				if reply > 0 {
					c.Write(make([]byte, reply))
				}
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return &listener{ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port)}
}

// closedPort returns a loopback port nothing listens on (it was just freed).
func closedPort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}
