package harness

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// DNSServer answers A and AAAA for a few names on 127.0.0.1 (UDP and TCP),
// as the load balancer's DNS zone would. DropAAAA makes AAAA queries
// answer with no records, as for a load balancer that is IPv4-only.
type DNSServer struct {
	Addr     string // host:port, for --dns-server
	DropAAAA atomic.Bool
	mu       sync.Mutex
	records  map[string][]net.IP
	// aliases are Route 53 alias records (FollowRoute53): name and type
	// ("A", "AAAA") -> the target name, answered with the target's
	// addresses of that family.
	aliases  map[string]string
	udp, tcp *dns.Server
}

// StartDNSServer serves records (name -> addresses of either family).
func StartDNSServer(records map[string][]string) (*DNSServer, error) {
	s := &DNSServer{records: map[string][]net.IP{}}
	for name, ips := range records {
		for _, ip := range ips {
			s.records[dns.Fqdn(strings.ToLower(name))] = append(s.records[dns.Fqdn(strings.ToLower(name))], net.ParseIP(ip))
		}
	}
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		// The same port over TCP, for truncated answers; it may be taken.
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 10 {
			return nil, err
		}
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: ln, Handler: s}
	go func() { _ = s.udp.ActivateAndServe() }()
	go func() { _ = s.tcp.ActivateAndServe() }()
	return s, nil
}

// ServeDNS implements dns.Handler.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range req.Question {
		ips, known := s.records[strings.ToLower(q.Name)]
		if !known {
			var ok bool
			if ips, ok = s.alias(q); !ok {
				m.Rcode = dns.RcodeNameError
				continue
			}
		}
		for _, ip := range ips {
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
			switch {
			case q.Qtype == dns.TypeA && ip.To4() != nil:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip.To4()})
			case q.Qtype == dns.TypeAAAA && ip.To4() == nil && !s.DropAAAA.Load():
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip})
			}
		}
	}
	_ = w.WriteMsg(m)
}

// alias answers a name from the Route 53 alias records, as Route 53 does:
// an alias of the asked type gives its target's addresses; a name with
// aliases of the other type only has no data of this one; a wildcard
// (*.apps...) covers the names under it that have no record of their own.
func (s *DNSServer) alias(q dns.Question) ([]net.IP, bool) {
	name := strings.ToLower(q.Name)
	typ := dns.TypeToString[q.Qtype]
	for _, n := range []string{name, wildcardOf(name)} {
		if n == "" {
			continue
		}
		target, ok := s.aliases[n+"/"+typ]
		if ok {
			return s.records[target], true
		}
		if _, other := s.aliases[n+"/"+otherType(typ)]; other {
			return nil, true
		}
	}
	return nil, false
}

func wildcardOf(name string) string {
	if i := strings.Index(name, "."); i > 0 && !strings.HasPrefix(name, "*.") {
		return "*" + name[i:]
	}
	return ""
}

func otherType(t string) string {
	if t == "A" {
		return "AAAA"
	}
	return "A"
}

// Close stops the server.
func (s *DNSServer) Close() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
}
