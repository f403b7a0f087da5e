package network

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// open opens the Host of a test namespace and closes it when t ends.
func open(t testing.TB, netns string) *Host {
	t.Helper()
	h, err := Open(netns)
	if err != nil {
		t.Fatalf("Open(%q): %v", netns, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// serve listens on addr inside h's namespace (the listener stays bound to
// it) and answers every connection with reply and a newline, until t ends.
func serve(t testing.TB, h *Host, addr netip.AddrPort, reply string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, h, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write([]byte(reply + "\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln
}

// ask connects from inside h's namespace to addr and returns the first line
// it reads.
func ask(h *Host, addr netip.AddrPort, timeout time.Duration) (string, error) {
	var line string
	err := h.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

// askUntil repeats ask until the answer is want, for at most limit; it
// returns how long that took.
func askUntil(t testing.TB, h *Host, addr netip.AddrPort, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got string
	var err error
	for time.Since(start) < limit {
		got, err = ask(h, addr, 100*time.Millisecond)
		if err == nil && got == want {
			return time.Since(start)
		}
		if err == nil {
			err = errors.New("answered " + got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %q from %s within %v: last: %v", addr, want, h, limit, err)
	return 0
}
