package urlguard

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDNS answers A and AAAA queries from a table the test changes at will,
// standing in for an attacker's name server (TTL 0, a new answer each time).
type fakeDNS struct {
	conn    net.PacketConn
	mu      sync.Mutex
	answers map[string][]netip.Addr // lower-case name without the final dot
	queries map[string]int
}

// useFakeDNS makes every name lookup of this test binary (the policy's
// dialer uses net.DefaultResolver) go to a fakeDNS until the test ends;
// /etc/hosts still answers first, as always. Tests using it must not run in
// parallel.
func useFakeDNS(t *testing.T) *fakeDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{conn: conn, answers: map[string][]netip.Addr{}, queries: map[string]int{}}
	go d.serve()
	saved := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp", conn.LocalAddr().String())
	}}
	t.Cleanup(func() {
		net.DefaultResolver = saved
		conn.Close()
	})
	return d
}

func (d *fakeDNS) set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answers[name] = nil
	for _, a := range addrs {
		d.answers[name] = append(d.answers[name], netip.MustParseAddr(a))
	}
}

func (d *fakeDNS) asked(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[name]
}

func (d *fakeDNS) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, q := range d.queries {
		n += q
	}
	return n
}

func (d *fakeDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			d.conn.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query: the header, the question as
// asked, and one record per address of the asked type (none: NXDOMAIN).
func (d *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	question := q[12 : i+5]
	qtype := binary.BigEndian.Uint16(q[i+1:])
	name := strings.ToLower(strings.Join(labels, "."))

	d.mu.Lock()
	d.queries[name]++
	addrs, known := d.answers[name]
	d.mu.Unlock()

	var records []byte
	count := 0
	for _, a := range addrs {
		var rdata []byte
		switch {
		case qtype == 1 && a.Is4():
			b := a.As4()
			rdata = b[:]
		case qtype == 28 && !a.Is4():
			b := a.As16()
			rdata = b[:]
		default:
			continue
		}
		// Name (pointer to the question), type, class IN, TTL 0, data.
		records = append(records, 0xc0, 12, byte(qtype>>8), byte(qtype), 0, 1, 0, 0, 0, 0, 0, byte(len(rdata)))
		records = append(records, rdata...)
		count++
	}
	flags := uint16(0x8180) // response, recursion desired and available
	if !known {
		flags |= 3 // NXDOMAIN
	}
	resp := make([]byte, 12, 12+len(question)+len(records))
	copy(resp, q[:2])
	binary.BigEndian.PutUint16(resp[2:], flags)
	binary.BigEndian.PutUint16(resp[4:], 1)
	binary.BigEndian.PutUint16(resp[6:], uint16(count))
	resp = append(resp, question...)
	return append(resp, records...)
}

// hitServer counts the requests it serves.
type hitServer struct {
	*httptest.Server
	hits atomic.Int32
	port string
}

func newHitServer(t *testing.T) *hitServer {
	t.Helper()
	s := &hitServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.Write([]byte("inside"))
	}))
	t.Cleanup(s.Close)
	_, s.port, _ = net.SplitHostPort(s.Listener.Addr().String())
	return s
}

func refused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || !errors.Is(err, ErrNotAllowed) {
		t.Errorf("%s: got %v, want a refusal wrapping ErrNotAllowed", what, err)
		return
	}
	if !strings.Contains(err.Error(), "url not allowed: ") {
		t.Errorf("%s: unclear error %q", what, err)
	}
}

func get(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// An allowed name whose DNS answer is internal is refused when dialled,
// for every internal range and spelling of an address (IPv4-mapped IPv6
// included), for source and result hosts alike: the check is on the
// address the dialer connects to, after resolution. A server listening
// there is never reached. The control shows the fake DNS does route the
// fetch when the address is listed.
func TestNamesResolvingToInternalAddressesAreRefused(t *testing.T) {
	dns := useFakeDNS(t)
	inside := newHitServer(t)
	p, err := New([]string{"*.upsampler.com", "images.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.HTTPClient(5 * time.Second)
	for i, addr := range []string{
		"127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::",
		"10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "::ffff:10.0.0.1",
		"169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "fc00::1", "fd00:ec2::254",
		"224.0.0.1", "ff02::1",
	} {
		name := fmt.Sprintf("r%d.upsampler.com", i)
		dns.set(name, addr)
		refused(t, name+" -> "+addr, get(c, "http://"+name+":"+inside.port+"/result.png"))
		if dns.asked(name) == 0 {
			t.Errorf("%s was never resolved: refused for another reason", name)
		}
	}
	// A source host answering with loopback addresses of both families.
	dns.set("images.example.com", "127.0.0.1", "::1")
	refused(t, "source host resolving to loopback", get(c, "http://images.example.com:"+inside.port+"/a.png"))
	if n := inside.hits.Load(); n != 0 {
		t.Fatalf("the internal server was reached %d times", n)
	}

	listed, _ := New([]string{"*.upsampler.com", "127.0.0.1:" + inside.port})
	dns.set("ok.upsampler.com", "127.0.0.1")
	if err := get(listed.HTTPClient(5*time.Second), "http://ok.upsampler.com:"+inside.port+"/"); err != nil || inside.hits.Load() != 1 {
		t.Fatalf("control: a listed address behind an allowed name: %v, %d hits", err, inside.hits.Load())
	}
}

// DNS rebinding: the address is checked on every connection, not once per
// name, so a name whose first answer was acceptable and whose next answer
// is internal is refused on the next dial.
func TestDNSRebindingIsCheckedOnEveryDial(t *testing.T) {
	dns := useFakeDNS(t)
	srv := newHitServer(t)
	// 127.0.0.1 stands for the acceptable first answer (listed literally);
	// the rebound answer is another internal address.
	p, _ := New([]string{"rebind.upsampler.com", "127.0.0.1"})
	c := p.HTTPClient(5 * time.Second)
	u := "http://rebind.upsampler.com:" + srv.port + "/result.png"

	dns.set("rebind.upsampler.com", "127.0.0.1")
	if err := get(c, u); err != nil || srv.hits.Load() != 1 {
		t.Fatalf("first fetch: %v, %d hits", err, srv.hits.Load())
	}
	for _, rebound := range []string{"169.254.169.254", "10.0.0.1", "::1", "127.0.0.2"} {
		c.CloseIdleConnections() // a new connection, as after a pause
		dns.set("rebind.upsampler.com", rebound)
		refused(t, "rebound to "+rebound, get(c, u))
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("%d hits after rebinding", srv.hits.Load())
	}
}

// A redirect to an internal target, a foreign scheme, or an allowed name
// resolving inward is refused before the target is contacted, whatever the
// redirect status. The redirector is allowed (listed literally, as a local
// stack lists its hosts); the control redirect to a listed target is
// followed.
func TestRedirectsToInternalTargetsAreRefused(t *testing.T) {
	dns := useFakeDNS(t)
	target := newHitServer(t)
	var location atomic.Value
	var status atomic.Int32
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", location.Load().(string))
		w.WriteHeader(int(status.Load()))
	}))
	defer redirector.Close()
	rhost := strings.TrimPrefix(redirector.URL, "http://")
	p, _ := New([]string{rhost, "*.upsampler.com"})
	c := p.HTTPClient(5 * time.Second)
	dns.set("inner.upsampler.com", "127.0.0.1")
	dns.set("meta.upsampler.com", "169.254.169.254")
	tp := target.port

	for _, loc := range []string{
		"http://127.0.0.1:" + tp + "/", // the redirector's address, another port
		"http://localhost:" + tp + "/",
		"http://[::1]:" + tp + "/",
		"http://[::ffff:127.0.0.1]:" + tp + "/",
		"http://[::ffff:7f00:1]:" + tp + "/",
		"http://2130706433:" + tp + "/",
		"http://0x7f000001:" + tp + "/",
		"http://0177.0.0.1:" + tp + "/",
		"http://127.1:" + tp + "/",
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://10.0.0.1/",
		"http://[fe80::1]/",
		"http://[fc00::1]/",
		"http://inner.upsampler.com:" + tp + "/", // allowed name, loopback answer
		"http://meta.upsampler.com/latest/meta-data/",
		"http://user:pw@" + rhost + "/",
		"file:///etc/passwd",
		"gopher://127.0.0.1:" + tp + "/_GET",
		"ftp://" + rhost + "/a.png",
		"data:image/png;base64,iVBORw0KGgo=",
		"//169.254.169.254/", // scheme-relative
	} {
		for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			location.Store(loc)
			status.Store(int32(code))
			refused(t, fmt.Sprintf("%d to %s", code, loc), get(c, redirector.URL+"/result.png"))
		}
	}
	if n := target.hits.Load(); n != 0 {
		t.Fatalf("a redirect target was reached %d times", n)
	}

	listed, _ := New([]string{rhost, "127.0.0.1:" + tp})
	location.Store("http://127.0.0.1:" + tp + "/")
	status.Store(http.StatusFound)
	if err := get(listed.HTTPClient(5*time.Second), redirector.URL+"/"); err != nil || target.hits.Load() != 1 {
		t.Fatalf("control: redirect to a listed target: %v, %d hits", err, target.hits.Load())
	}
	if dns.asked("inner.upsampler.com") == 0 {
		t.Fatal("the redirect to inner.upsampler.com was refused before resolving it: the dial-time check is untested")
	}
}

// Result URLs come from Upsampler (status answers and unauthenticated
// callbacks). With the default UPSAMPLER_RESULT_HOSTS, every SSRF spelling
// is refused by the policy before any DNS lookup or connection.
func TestResultURLMatrix(t *testing.T) {
	dns := useFakeDNS(t)
	p, err := New([]string{"upsampler.com", "*.upsampler.com"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.HTTPClient(5 * time.Second)
	for _, u := range []string{
		"http://127.0.0.1/r.png", "http://localhost/r.png", "http://[::1]/r.png",
		"http://[::ffff:127.0.0.1]/r.png", "http://[::ffff:7f00:1]/r.png", "http://[0:0:0:0:0:0:0:1]/r.png",
		"http://2130706433/r.png", "http://0x7f000001/r.png", "http://0177.0.0.1/r.png", "http://127.1/r.png",
		"http://0/r.png", "http://0.0.0.0/r.png", "http://10.0.0.1/r.png", "http://172.16.0.1/r.png",
		"http://192.168.0.1/r.png", "http://100.64.0.1/r.png", "http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/r.png", "http://[fe80::1%25eth0]/r.png", "http://[fc00::1]/r.png", "http://[fd00:ec2::254]/",
		"http://metadata.google.internal/computeMetadata/v1/",
		"http://upsampler.com.evil.org/r.png", "http://evilupsampler.com/r.png",
		"http://upsampler.com@169.254.169.254/r.png", "http://169.254.169.254#@upsampler.com/r.png",
		"http://169.254.169.254\\@upsampler.com/r.png", "http://user:pw@cdn.upsampler.com/r.png",
		"http://cdn.upsampler.com.169.254.169.254.nip.io/r.png",
		"file:///etc/passwd", "gopher://cdn.upsampler.com/_x", "ftp://cdn.upsampler.com/r.png",
		"data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)", "//cdn.upsampler.com/r.png",
		"http://cdn..upsampler.com/r.png", "http://İ.upsampler.com/r.png",
	} {
		_, err := p.Check(u)
		refused(t, u, err)
		// The fetch fails too: refused by the guarded transport, or
		// before it, when the URL cannot make a request at all.
		if err := get(c, u); err == nil {
			t.Errorf("%s: fetched", u)
		}
	}
	if n := dns.total(); n != 0 {
		t.Fatalf("%d DNS queries: some URL got past the policy", n)
	}
}

// A literally listed address with a port allows that port only, also when
// an allowed name resolves to it: "127.0.0.1:8098" must not open every
// local port to a wildcard name whose DNS answer is 127.0.0.1.
func TestListedAddressAllowsOnlyItsPort(t *testing.T) {
	dns := useFakeDNS(t)
	listedSrv, otherSrv := newHitServer(t), newHitServer(t)
	p, _ := New([]string{"*.upsampler.com", "127.0.0.1:" + listedSrv.port})
	c := p.HTTPClient(5 * time.Second)
	dns.set("x.upsampler.com", "127.0.0.1")

	refused(t, "allowed name, listed address, another port", get(c, "http://x.upsampler.com:"+otherSrv.port+"/"))
	if n := otherSrv.hits.Load(); n != 0 {
		t.Fatalf("an unlisted port was reached %d times", n)
	}
	if err := get(c, "http://x.upsampler.com:"+listedSrv.port+"/"); err != nil || listedSrv.hits.Load() != 1 {
		t.Fatalf("the listed port: %v, %d hits", err, listedSrv.hits.Load())
	}
	if err := get(c, "http://127.0.0.1:"+listedSrv.port+"/"); err != nil || listedSrv.hits.Load() != 2 {
		t.Fatalf("the listed address itself: %v", err)
	}
	if err := p.control("tcp", "127.0.0.1:1", nil); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("dial to an unlisted port of a listed address: %v", err)
	}
	// Listed without a port, the address is allowed on any port.
	any, _ := New([]string{"*.upsampler.com", "127.0.0.1"})
	if err := get(any.HTTPClient(5*time.Second), "http://x.upsampler.com:"+otherSrv.port+"/"); err != nil || otherSrv.hits.Load() != 1 {
		t.Fatalf("an address listed without a port: %v", err)
	}
}
