package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/pki"
)

// tlsMember starts an embedded member that serves clients over TLS and
// requires client certificates from the CA in caDir.
func tlsMember(t *testing.T) (m *Embedded, caDir string) {
	t.Helper()
	dir := t.TempDir()
	caDir = filepath.Join(dir, "pki")
	if _, _, err := pki.InitCA(caDir, false); err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.Issue(pki.IssueRequest{CADir: caDir, Name: "etcd-1", Kind: pki.KindEtcd, Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err = StartEmbedded(EmbeddedConfig{Dir: filepath.Join(dir, "etcd"), ClientCertFile: cert, ClientKeyFile: key,
		ClientCAFile: filepath.Join(caDir, pki.CACertFile), ClientCertAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, caDir
}

func clientTLS(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	c, err := pki.LoadClientTLS(caFile, certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDialTLS runs a real etcd member with client-certificate
// authentication: the right certificate gets in and commits a Txn; no
// certificate, one of another CA, and a CA file that does not know the
// member's certificate fail with an error that says which.
func TestDialTLS(t *testing.T) {
	m, caDir := tlsMember(t)
	eps := m.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "https://127.0.0.1:") {
		t.Fatalf("endpoints %v", eps)
	}
	caFile := filepath.Join(caDir, pki.CACertFile)
	issue := func(caDir, name, kind string, hosts ...string) (string, string) {
		cert, key, err := pki.Issue(pki.IssueRequest{CADir: caDir, Name: name, Kind: kind, Hosts: hosts})
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	agentCert, agentKey := issue(caDir, "host-1", pki.KindAgent, "host-1")
	serverCert, serverKey := issue(caDir, "s1", pki.KindServer, "s1")
	otherCA := filepath.Join(t.TempDir(), "other")
	if _, _, err := pki.InitCA(otherCA, false); err != nil {
		t.Fatal(err)
	}
	strangerCert, strangerKey := issue(otherCA, "host-1", pki.KindAgent, "host-1")

	t.Run("right certificate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := DialTLS(ctx, eps, 5*time.Second, clientTLS(t, caFile, agentCert, agentKey))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		key := clusterstore.Prefix + "tls-test"
		ok, rev, err := s.Txn(ctx, []clusterstore.Cond{clusterstore.Missing(key)}, []clusterstore.Op{clusterstore.Put(key, []byte("v"))})
		if err != nil || !ok || rev == 0 {
			t.Fatalf("txn: %v %v %v", ok, rev, err)
		}
		kv, found, _, err := s.Get(ctx, key)
		if err != nil || !found || string(kv.Value) != "v" {
			t.Fatalf("get: %+v %v %v", kv, found, err)
		}
	})
	for _, c := range []struct {
		name string
		cfg  func() *tls.Config
		want string
	}{
		{"no client certificate", func() *tls.Config { return clientTLS(t, caFile, "", "") },
			"remote error: tls: certificate required (etcd requires a client certificate and none was given)"},
		{"client certificate of another CA", func() *tls.Config { return clientTLS(t, caFile, strangerCert, strangerKey) },
			"remote error: tls: unknown certificate authority (etcd does not trust the CA that signed the client certificate)"},
		{"a server's certificate as client certificate", func() *tls.Config {
			c := clientTLS(t, caFile, "", "")
			kp, err := tls.LoadX509KeyPair(serverCert, serverKey)
			if err != nil {
				t.Fatal(err)
			}
			c.Certificates = []tls.Certificate{kp}
			return c
		}, "etcd refused the client certificate"},
		{"member's certificate from an unknown CA", func() *tls.Config {
			return clientTLS(t, filepath.Join(otherCA, pki.CACertFile), agentCert, agentKey)
		}, "x509: certificate signed by unknown authority (etcd's certificate is not signed by a CA this client trusts"},
		{"no CA file (system CAs)", func() *tls.Config { return clientTLS(t, "", agentCert, agentKey) },
			"certificate signed by unknown authority"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			s, err := DialTLS(context.Background(), eps, time.Second, c.cfg())
			if err == nil {
				s.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "TLS to "+eps[0]) {
				t.Fatalf("error\n %v\nlacks\n %q", err, c.want)
			}
			t.Logf("%v (after %v)", err, time.Since(start).Round(time.Millisecond))
		})
	}
	t.Run("plain Dial", func(t *testing.T) {
		s, err := Dial(context.Background(), eps, time.Second)
		if err == nil {
			s.Close()
			t.Fatal("connected without TLS configuration")
		}
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("error: %v", err)
		}
	})
	t.Run("http endpoint with TLS", func(t *testing.T) {
		start := time.Now()
		_, err := DialTLS(context.Background(), []string{strings.Replace(eps[0], "https", "http", 1)}, 5*time.Second, clientTLS(t, caFile, agentCert, agentKey))
		if err == nil || !strings.Contains(err.Error(), "is not https:// but TLS is configured") || time.Since(start) > time.Second {
			t.Errorf("error %v after %v", err, time.Since(start))
		}
	})
}

func TestStartEmbeddedTLSValidates(t *testing.T) {
	cases := map[string]EmbeddedConfig{
		"https without certificate": {ClientURL: "https://127.0.0.1:2379"},
		"http with certificate":     {ClientURL: "http://127.0.0.1:2379", ClientCertFile: "c.pem", ClientKeyFile: "k.pem"},
		"certificate without key":   {ClientCertFile: "c.pem"},
		"CA without certificate":    {ClientCAFile: "ca.pem"},
		"cert auth without CA":      {ClientCertFile: "c.pem", ClientKeyFile: "k.pem", ClientCertAuth: true},
		"https peer":                {ClientCertFile: "c.pem", ClientKeyFile: "k.pem", PeerURL: "https://127.0.0.1:2380"},
		"missing files":             {ClientCertFile: "/nonexistent/c.pem", ClientKeyFile: "/nonexistent/k.pem"},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			cfg.Dir = t.TempDir()
			e, err := StartEmbedded(cfg)
			if err == nil {
				e.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), "start embedded etcd") {
				t.Errorf("error lacks context: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestExplainTLS covers the alerts of etcd builds that TestDialTLS cannot
// produce: an etcd built with an older Go (Debian's 3.4) answers a missing
// client certificate with "bad certificate", not "certificate required".
func TestExplainTLS(t *testing.T) {
	remote := func(text string) error { return &net.OpError{Op: "remote error", Err: errors.New(text)} }
	for _, c := range []struct {
		err     error
		hasCert bool
		want    string
	}{
		{remote("tls: bad certificate"), false, "remote error: tls: bad certificate (etcd requires a client certificate and none was given)"},
		{remote("tls: bad certificate"), true, "(etcd refused the client certificate: is it one for clients, with clientAuth?)"},
		{remote("tls: expired certificate"), true, "(etcd found the client certificate expired)"},
		{remote("tls: handshake failure"), true, "remote error: tls: handshake failure"},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), true, "connection refused"},
	} {
		got := explainTLS(c.err, c.hasCert).Error()
		if !strings.HasSuffix(got, c.want) {
			t.Errorf("%v (cert %v): %q, want suffix %q", c.err, c.hasCert, got, c.want)
		}
	}
}
