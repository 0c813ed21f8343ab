package stack

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// SMTPSink is an SMTP server for tests, behind a real MTA: it answers
// RCPT by the recipient's local part: "later…" 450, "bad…" 550, anything
// else 250, and remembers what it answered.
type SMTPSink struct {
	ln      net.Listener
	mu      sync.Mutex
	answers map[string][]int // recipient -> the codes answered, in order
}

// StartSMTPSink listens on a free loopback port.
func StartSMTPSink() (*SMTPSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SMTPSink{ln: ln, answers: map[string][]int{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s, nil
}

// Close stops listening.
func (s *SMTPSink) Close() { s.ln.Close() }

// Port is where it listens.
func (s *SMTPSink) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *SMTPSink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(f string, a ...any) { fmt.Fprintf(c, f+"\r\n", a...) }
	say("220 sink.example.net ESMTP")
	accepted := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 sink.example.net")
		case strings.HasPrefix(cmd, "MAIL"):
			accepted = 0
			say("250 2.1.0 Ok")
		case strings.HasPrefix(cmd, "RCPT"):
			rcpt := strings.ToLower(strings.Trim(strings.TrimSpace(line)[len("RCPT TO:"):], "<> "))
			code := 250
			switch {
			case strings.HasPrefix(rcpt, "later"):
				code = 450
				say("450 4.2.0 <%s>: Recipient address rejected: try again later", rcpt)
			case strings.HasPrefix(rcpt, "bad"):
				code = 550
				say("550 5.1.1 <%s>: Recipient address rejected: User unknown", rcpt)
			default:
				accepted++
				say("250 2.1.5 Ok")
			}
			s.mu.Lock()
			s.answers[rcpt] = append(s.answers[rcpt], code)
			s.mu.Unlock()
		case cmd == "DATA":
			if accepted == 0 {
				say("554 5.5.1 Error: no valid recipients")
				continue
			}
			say("354 End data with <CR><LF>.<CR><LF>")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			say("250 2.0.0 Ok: queued as SINK%d", time.Now().UnixNano()%100000)
		case cmd == "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("250 Ok")
		}
	}
}

// First is the code first answered to rcpt.
func (s *SMTPSink) First(rcpt string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := s.answers[rcpt]
	if len(codes) == 0 {
		return 0, false
	}
	return codes[0], true
}
