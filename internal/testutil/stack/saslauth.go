package stack

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
)

// SASLAuth is an authentication server speaking Dovecot's auth protocol
// (version 1.2, as Dovecot's documentation specifies it: "Dovecot
// Authentication Protocol"), the one a real Postfix asks with
// smtpd_sasl_type = dovecot. It offers PLAIN and accepts the users it
// was given with their passwords; every other login fails. A stand-in
// for Dovecot's auth service, so that the real Postfix logs real SASL
// logins and failures.
type SASLAuth struct {
	Addr  string // host:port, for smtpd_sasl_path = inet:Addr
	ln    net.Listener
	users map[string]string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// StartSASLAuth listens on a loopback port.
func StartSASLAuth(users map[string]string) (*SASLAuth, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SASLAuth{Addr: ln.Addr().String(), ln: ln, users: users, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

// Stop closes the listener and the connections (Postfix's smtpd
// processes keep theirs while they idle) and waits for them to end.
func (s *SASLAuth) Stop() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *SASLAuth) serve(c net.Conn) {
	defer c.Close()
	fmt.Fprintf(c, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t%d\nCUID\t1\nCOOKIE\t%032x\nDONE\n", os.Getpid(), 1)
	r := bufio.NewScanner(c)
	r.Buffer(make([]byte, 0, 64<<10), 64<<10)
	pending := map[string]bool{} // AUTH ids waiting for their response (CONT)
	for r.Scan() {
		f := strings.Split(r.Text(), "\t")
		switch {
		case f[0] == "VERSION" && (len(f) < 2 || f[1] != "1"):
			return // another major version: the protocol says disconnect
		case f[0] == "AUTH" && len(f) >= 3:
			id, mech := f[1], f[2]
			if mech != "PLAIN" {
				fmt.Fprintf(c, "FAIL\t%s\treason=unsupported mechanism\n", id)
				continue
			}
			resp, ok := "", false
			for _, p := range f[3:] {
				if v, found := strings.CutPrefix(p, "resp="); found {
					resp, ok = v, true
				}
			}
			if !ok {
				pending[id] = true
				fmt.Fprintf(c, "CONT\t%s\t\n", id)
				continue
			}
			s.answer(c, id, resp)
		case f[0] == "CONT" && len(f) >= 3 && pending[f[1]]:
			delete(pending, f[1])
			s.answer(c, f[1], f[2])
		}
	}
}

// answer checks a PLAIN response (authzid NUL authcid NUL password).
func (s *SASLAuth) answer(c net.Conn, id, resp string) {
	raw, err := base64.StdEncoding.DecodeString(resp)
	parts := bytes.Split(raw, []byte{0})
	if err != nil || len(parts) != 3 {
		fmt.Fprintf(c, "FAIL\t%s\treason=malformed PLAIN response\n", id)
		return
	}
	user, pass := string(parts[1]), string(parts[2])
	if want, ok := s.users[user]; ok && want == pass {
		fmt.Fprintf(c, "OK\t%s\tuser=%s\n", id, user)
		return
	}
	fmt.Fprintf(c, "FAIL\t%s\tuser=%s\n", id, user)
}
