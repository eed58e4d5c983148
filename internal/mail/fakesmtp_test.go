package mail

import (
	"bufio"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// fakeSMTP is a minimal SMTP responder for testing how Send reacts to the
// server's replies. Replies are full lines such as "550 5.1.1 no such user".
type fakeSMTP struct {
	Addr *net.TCPAddr

	Greeting string            // default "220 fake ESMTP"
	Auth     string            // reply to AUTH; "" = AUTH not advertised
	MailFrom string            // reply to MAIL FROM; default 250
	Rcpt     map[string]string // reply per recipient address; default 250
	DataEnd  string            // reply after the message; default 250

	mu       sync.Mutex
	conns    []net.Conn
	received []fakeMail
	authLog  []string
	ended    int // sessions the client ended (QUIT or hang-up)
}

func (f *fakeSMTP) Ended() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended
}

type fakeMail struct {
	From string
	To   []string
	Data string
}

func startFakeSMTP(t *testing.T, configure func(*fakeSMTP)) *fakeSMTP {
	t.Helper()
	f := &fakeSMTP{}
	if configure != nil {
		configure(f)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.Addr = l.Addr().(*net.TCPAddr)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		// A client that leaves a connection open must not hang the test.
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.serve(c)
			}()
		}
	}()
	return f
}

func (f *fakeSMTP) Received() []fakeMail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeMail(nil), f.received...)
}

func (f *fakeSMTP) serve(c net.Conn) {
	r := textproto.NewReader(bufio.NewReader(c))
	w := bufio.NewWriter(c)
	reply := func(lines ...string) bool {
		for _, l := range lines {
			if _, err := w.WriteString(l + "\r\n"); err != nil {
				return false
			}
		}
		return w.Flush() == nil
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	greeting := or(f.Greeting, "220 fake ESMTP")
	if !reply(greeting) || !strings.HasPrefix(greeting, "220") {
		return
	}
	var cur fakeMail
	for {
		line, err := r.ReadLine()
		if err != nil {
			f.mu.Lock()
			f.ended++
			f.mu.Unlock()
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			if f.Auth != "" {
				reply("250-fake", "250-AUTH PLAIN LOGIN", "250 8BITMIME")
			} else {
				reply("250-fake", "250 8BITMIME")
			}
		case "AUTH":
			f.mu.Lock()
			f.authLog = append(f.authLog, arg)
			f.mu.Unlock()
			reply(f.Auth)
		case "MAIL":
			cur = fakeMail{From: arg}
			reply(or(f.MailFrom, "250 2.1.0 ok"))
		case "RCPT":
			if len(arg) < 3 || !strings.EqualFold(arg[:3], "TO:") {
				reply("501 5.5.4 syntax")
				continue
			}
			addr, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(arg[3:]), "<"), ">")
			if rep := f.Rcpt[addr]; rep != "" {
				reply(rep)
				continue
			}
			cur.To = append(cur.To, addr)
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 go ahead")
			lines, err := r.ReadDotLines()
			if err != nil {
				return
			}
			cur.Data = strings.Join(lines, "\n")
			rep := or(f.DataEnd, "250 2.0.0 queued")
			if strings.HasPrefix(rep, "250") {
				f.mu.Lock()
				f.received = append(f.received, cur)
				f.mu.Unlock()
			}
			reply(rep)
		case "RSET":
			cur = fakeMail{}
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			f.mu.Lock()
			f.ended++
			f.mu.Unlock()
			return
		default:
			reply("502 5.5.2 not implemented")
		}
	}
}
