package event

// TCP address families (the "family" field).
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// Results of a connect (the "result" field of tcp.connect).
const (
	TCPEstablished = "established"
	TCPRefused     = "refused" // the peer answered with a reset (ECONNREFUSED)
	TCPFailed      = "failed"  // any other error: timeout, unreachable, closed while connecting
)

// TCPConn is the connection part of every tcp.* payload. Source is the side
// that opened the connection, destination the side that accepted it, for
// connects and accepts alike. IPv4 peers of IPv6 sockets (v4-mapped
// addresses) are reported as IPv4.
type TCPConn struct {
	Saddr  string
	Daddr  string
	Sport  uint16
	Dport  uint16
	Family string // FamilyIPv4 or FamilyIPv6
}

func (c *TCPConn) writeFields(w FieldWriter) {
	w.String("saddr", c.Saddr)
	w.String("daddr", c.Daddr)
	w.Uint("sport", uint64(c.Sport))
	w.Uint("dport", uint64(c.Dport))
	w.String("family", c.Family)
}

// TCPConnect is the payload of a tcp.connect event: the outcome of one
// connect, reported in the name of the task that called it.
type TCPConnect struct {
	TCPConn
	Result    string // TCPEstablished, TCPRefused or TCPFailed
	Error     string // errno name (e.g. ETIMEDOUT) when the connect failed
	LatencyNs uint64 // from sending the SYN to the result
}

// WriteFields implements Payload.
func (p *TCPConnect) WriteFields(w FieldWriter) {
	p.TCPConn.writeFields(w)
	w.String("result", p.Result)
	if p.Error != "" {
		w.String("error", p.Error)
	}
	w.Uint("latency_ns", p.LatencyNs)
}

// TCPAccept is the payload of a tcp.accept event: a connection to a
// listening socket completed its handshake, reported in the name of the task
// that called listen().
type TCPAccept struct {
	TCPConn
}

// WriteFields implements Payload.
func (p *TCPAccept) WriteFields(w FieldWriter) { p.TCPConn.writeFields(w) }

// Directions of a closed connection (the "direction" field of tcp.close).
const (
	TCPOutbound = "out" // opened by a connect
	TCPInbound  = "in"  // accepted
)

// TCPClose is the payload of a tcp.close event.
type TCPClose struct {
	TCPConn
	Direction  string // TCPOutbound or TCPInbound
	DurationNs uint64 // from the SYN (outbound) or the handshake's end (inbound) to the close
	TxBytes    uint64 // bytes sent and acknowledged by the peer
	RxBytes    uint64 // bytes received
}

// WriteFields implements Payload.
func (p *TCPClose) WriteFields(w FieldWriter) {
	p.TCPConn.writeFields(w)
	w.String("direction", p.Direction)
	w.Uint("duration_ns", p.DurationNs)
	w.Uint("tx_bytes", p.TxBytes)
	w.Uint("rx_bytes", p.RxBytes)
}

// TCPFlow is the payload of a tcp.flow event (count mode): connect attempts
// from one source address to one destination address and port.
type TCPFlow struct {
	Saddr         string
	Daddr         string
	Dport         uint16
	Family        string
	Count         uint64 // attempts since the tracker started
	IntervalCount uint64 // attempts since the previous report of this flow
}

// WriteFields implements Payload.
func (p *TCPFlow) WriteFields(w FieldWriter) {
	w.String("saddr", p.Saddr)
	w.String("daddr", p.Daddr)
	w.Uint("dport", uint64(p.Dport))
	w.String("family", p.Family)
	w.Uint("count", p.Count)
	w.Uint("interval_count", p.IntervalCount)
}
