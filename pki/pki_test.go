package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// newCA makes a CA in a fresh directory.
func newCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, _, err := InitCA(dir, false); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mustIssue issues a certificate into the CA's directory.
func mustIssue(t *testing.T, caDir, name, kind string, hosts ...string) (cert, key string) {
	t.Helper()
	cert, key, err := Issue(IssueRequest{CADir: caDir, Name: name, Kind: kind, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func parseCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := readCerts(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return certs[0]
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %04o, want %04o", path, got, want)
	}
}

func TestInitCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	certPath, keyPath, err := InitCA(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(dir, "ca.pem") || keyPath != filepath.Join(dir, "ca-key.pem") {
		t.Errorf("paths %s %s", certPath, keyPath)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, certPath, 0o644)
	checkMode(t, keyPath, 0o600)
	ca := parseCert(t, certPath)
	pub, ok := ca.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", ca.PublicKey)
	}
	if !ca.IsCA || !strings.HasPrefix(ca.Subject.CommonName, "Bulwark cluster CA ") || len(ca.Subject.CommonName) != len("Bulwark cluster CA ")+8 {
		t.Errorf("CA subject %q, IsCA %v", ca.Subject.CommonName, ca.IsCA)
	}
	if years := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("CA lifetime %.1f years", years)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if _, _, err := loadCA(dir, time.Now()); err != nil {
		t.Errorf("load: %v", err)
	}

	// An existing CA is kept unless forced.
	before, _ := os.ReadFile(keyPath)
	_, _, err = InitCA(dir, false)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "ca.pem already exists") {
		t.Errorf("second init: %v", err)
	}
	if after, _ := os.ReadFile(keyPath); string(after) != string(before) {
		t.Error("refused init changed the key")
	}
	if _, _, err := InitCA(dir, true); err != nil {
		t.Fatalf("forced init: %v", err)
	}
	if after, _ := os.ReadFile(keyPath); string(after) == string(before) {
		t.Error("forced init kept the old key")
	}
	if other := parseCert(t, certPath); other.Subject.CommonName == ca.Subject.CommonName {
		t.Errorf("two CAs share the name %q", ca.Subject.CommonName)
	}
	// Only the key of a half-made CA left behind also counts as a CA.
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	if _, _, err := InitCA(dir, false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("init over a lone key: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestIssueKinds(t *testing.T) {
	caDir := newCA(t)
	ca := parseCert(t, filepath.Join(caDir, CACertFile))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	cases := []struct {
		name, kind string
		hosts      []string
		usages     []x509.ExtKeyUsage
		dns, ips   []string
	}{
		{"s1", KindServer, []string{"s1.example.org", "10.0.0.11", "S1", "10.0.0.11", "::1"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []string{"s1.example.org", "s1"}, []string{"10.0.0.11", "::1"}},
		{"host-1", KindAgent, []string{"host-1"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []string{"host-1"}, nil},
		{"alice", KindClient, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil},
		{"etcd-1", KindEtcd, []string{"127.0.0.1", "localhost."},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []string{"localhost"}, []string{"127.0.0.1"}},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			certPath, keyPath := mustIssue(t, caDir, c.name, c.kind, c.hosts...)
			if certPath != filepath.Join(caDir, c.name+".pem") || keyPath != filepath.Join(caDir, c.name+"-key.pem") {
				t.Errorf("paths %s %s", certPath, keyPath)
			}
			checkMode(t, certPath, 0o644)
			checkMode(t, keyPath, 0o600)
			cert := parseCert(t, certPath)
			if name, kind := Identity(cert); name != c.name || kind != c.kind {
				t.Errorf("identity %q %q", name, kind)
			}
			if !slices.Equal(cert.ExtKeyUsage, c.usages) || cert.IsCA {
				t.Errorf("usages %v, IsCA %v", cert.ExtKeyUsage, cert.IsCA)
			}
			var ips []string
			for _, ip := range cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(cert.DNSNames, c.dns) || !slices.Equal(ips, c.ips) {
				t.Errorf("SANs %v %v, want %v %v", cert.DNSNames, ips, c.dns, c.ips)
			}
			if days := time.Until(cert.NotAfter).Hours() / 24; days < DefaultDays-1 || days > DefaultDays+1 {
				t.Errorf("lifetime %.1f days, want %d", days, DefaultDays)
			}
			for _, u := range c.usages {
				if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
					t.Errorf("verify for usage %v: %v", u, err)
				}
			}
		})
	}

	// OutDir and Days.
	out := filepath.Join(t.TempDir(), "out")
	certPath, _, err := Issue(IssueRequest{CADir: caDir, Name: "s2", Kind: KindServer, Hosts: []string{"s2"}, Days: 30, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if days := time.Until(parseCert(t, certPath).NotAfter).Hours() / 24; days < 29.9 || days > 30.1 {
		t.Errorf("--days 30 gave %.1f days", days)
	}
	// Renewal replaces only when forced.
	if _, _, err := Issue(IssueRequest{CADir: caDir, Name: "s1", Kind: KindServer, Hosts: []string{"s1"}}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("issue over an existing certificate: %v", err)
	}
	if _, _, err := Issue(IssueRequest{CADir: caDir, Name: "s1", Kind: KindServer, Hosts: []string{"s1"}, Force: true}); err != nil {
		t.Errorf("forced renewal: %v", err)
	}
}

func TestIssueRefuses(t *testing.T) {
	caDir := newCA(t)
	ok := IssueRequest{CADir: caDir, Name: "s1", Kind: KindServer, Hosts: []string{"s1"}}
	with := func(f func(*IssueRequest)) IssueRequest { r := ok; f(&r); return r }
	for _, c := range []struct {
		name string
		req  IssueRequest
		want string
	}{
		{"name not a DNS label", with(func(r *IssueRequest) { r.Name = "Host_1" }), `"Host_1" is not a DNS label`},
		{"path in name", with(func(r *IssueRequest) { r.Name = "../s1" }), "not a DNS label"},
		{"empty name", with(func(r *IssueRequest) { r.Name = "" }), "name is empty"},
		{"reserved name", with(func(r *IssueRequest) { r.Name = "ca" }), `"ca" is reserved`},
		{"unknown kind", with(func(r *IssueRequest) { r.Kind = "peer" }), `unknown kind "peer": use one of server, agent, client, etcd`},
		{"no kind", with(func(r *IssueRequest) { r.Kind = "" }), "no kind given"},
		{"server without hosts", with(func(r *IssueRequest) { r.Hosts = nil }), "a server certificate needs at least one host"},
		{"client with hosts", with(func(r *IssueRequest) { r.Kind = KindClient }), "a client certificate names no hosts"},
		{"bad host", with(func(r *IssueRequest) { r.Hosts = []string{"s1", "bad host"} }), `host "bad host": not an IP address or a DNS name`},
		{"wildcard", with(func(r *IssueRequest) { r.Hosts = []string{"*.example.org"} }), `host "*.example.org"`},
		{"negative days", with(func(r *IssueRequest) { r.Days = -1 }), "days -1"},
		{"outlives the CA", with(func(r *IssueRequest) { r.Days = 4000 }), "after the CA itself"},
		{"no CA", with(func(r *IssueRequest) { r.CADir = t.TempDir() }), "create one with `bulwarkd ca init --dir"},
		{"no CA dir", with(func(r *IssueRequest) { r.CADir = "" }), "no CA directory given"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Issue(c.req)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
	entries, _ := os.ReadDir(caDir)
	if len(entries) != 2 {
		t.Errorf("refused requests left files: %v", entries)
	}

	// A CA whose key does not match its certificate, and an expired CA.
	other := newCA(t)
	if err := os.Rename(filepath.Join(other, CAKeyFile), filepath.Join(caDir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Issue(ok); err == nil || !strings.Contains(err.Error(), "cert and key do not match") {
		t.Errorf("mismatched CA: %v", err)
	}
	old := filepath.Join(t.TempDir(), "old")
	if _, _, err := initCA(old, false, time.Now().AddDate(-11, 0, 0)); err != nil {
		t.Fatal(err)
	}
	var exp *ExpiredError
	if _, _, err := Issue(with(func(r *IssueRequest) { r.CADir = old })); !errors.As(err, &exp) {
		t.Errorf("expired CA: %v", err)
	}
}

// handshake runs one TLS connection over loopback. The server writes
// "ok" after its handshake, so that the client also learns (on reading)
// when the server rejected its certificate after a TLS 1.3 handshake
// that looked finished to the client.
func handshake(t *testing.T, server, client *tls.Config) (peer []*x509.Certificate, serverErr, clientErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err  error
		peer []*x509.Certificate
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		_, err = tc.Write([]byte("ok"))
		done <- result{err: err, peer: tc.ConnectionState().PeerCertificates}
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), client)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 2)
		_, err = io.ReadFull(conn, buf)
		conn.Close()
	}
	r := <-done
	return r.peer, r.err, err
}

func TestHandshake(t *testing.T) {
	caDir := newCA(t)
	otherCA := newCA(t)
	caFile := filepath.Join(caDir, CACertFile)
	srvCert, srvKey := mustIssue(t, caDir, "s1", KindServer, "127.0.0.1", "localhost")
	cliCert, cliKey := mustIssue(t, caDir, "alice", KindClient)
	agentCert, agentKey := mustIssue(t, caDir, "host-1", KindAgent, "host-1")
	strangerCert, strangerKey := mustIssue(t, otherCA, "mallory", KindClient)

	server, err := LoadServerTLS(srvCert, srvKey, caFile, true)
	if err != nil {
		t.Fatal(err)
	}
	if server.MinVersion != tls.VersionTLS12 || server.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("server config: min version %x, client auth %v", server.MinVersion, server.ClientAuth)
	}
	client := func(ca, cert, key string) *tls.Config {
		t.Helper()
		c, err := LoadClientTLS(ca, cert, key, "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("right CA and client certificate", func(t *testing.T) {
		for _, c := range []struct{ cert, key, name, kind string }{
			{cliCert, cliKey, "alice", KindClient},
			{agentCert, agentKey, "host-1", KindAgent},
		} {
			peer, serr, cerr := handshake(t, server, client(caFile, c.cert, c.key))
			if serr != nil || cerr != nil {
				t.Fatalf("%s: server %v, client %v", c.name, serr, cerr)
			}
			if name, kind := Identity(peer[0]); name != c.name || kind != c.kind {
				t.Errorf("server sees %q %q, want %q %q", name, kind, c.name, c.kind)
			}
		}
	})
	t.Run("by name", func(t *testing.T) {
		c, err := LoadClientTLS(caFile, cliCert, cliKey, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		if _, serr, cerr := handshake(t, server, c); serr != nil || cerr != nil {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
		c.ServerName = "s9.example.org"
		if _, _, cerr := handshake(t, server, c); cerr == nil || !strings.Contains(cerr.Error(), "s9.example.org") {
			t.Errorf("name not in the certificate: %v", cerr)
		}
	})
	t.Run("wrong CA", func(t *testing.T) {
		_, _, cerr := handshake(t, server, client(filepath.Join(otherCA, CACertFile), cliCert, cliKey))
		if cerr == nil || !strings.Contains(cerr.Error(), "certificate signed by unknown authority") {
			t.Fatalf("client: %v", cerr)
		}
		t.Logf("client error: %v", cerr)
	})
	t.Run("client certificate from another CA", func(t *testing.T) {
		_, serr, cerr := handshake(t, server, client(caFile, strangerCert, strangerKey))
		if serr == nil || !strings.Contains(serr.Error(), "certificate signed by unknown authority") ||
			cerr == nil || !strings.Contains(cerr.Error(), "unknown certificate authority") {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
		t.Logf("client error: %v", cerr)
	})
	t.Run("no client certificate", func(t *testing.T) {
		_, serr, cerr := handshake(t, server, client(caFile, "", ""))
		if serr == nil || cerr == nil || !strings.Contains(cerr.Error(), "certificate required") {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
	})
	t.Run("client certificate of the wrong kind", func(t *testing.T) {
		// LoadClientTLS refuses a server certificate outright...
		_, err := LoadClientTLS(caFile, srvCert, srvKey, "")
		var fe *FileError
		if !errors.As(err, &fe) || fe.Setting != "cert_file" || !strings.Contains(err.Error(), `certificate "s1" cannot authenticate a client`) {
			t.Errorf("LoadClientTLS with a server certificate: %v", err)
		}
		// ...and a server requiring clientAuth refuses one presented anyway.
		kp, err := tls.LoadX509KeyPair(srvCert, srvKey)
		if err != nil {
			t.Fatal(err)
		}
		c := client(caFile, "", "")
		c.Certificates = []tls.Certificate{kp}
		_, serr, cerr := handshake(t, server, c)
		if serr == nil || !strings.Contains(serr.Error(), "incompatible key usage") || cerr == nil {
			t.Fatalf("server %v, client %v", serr, cerr)
		}
		// And a client certificate cannot serve.
		if _, err := LoadServerTLS(cliCert, cliKey, "", false); err == nil || !strings.Contains(err.Error(), "cannot authenticate a server") {
			t.Errorf("LoadServerTLS with a client certificate: %v", err)
		}
	})
	t.Run("optional client certificate", func(t *testing.T) {
		opt, err := LoadServerTLS(srvCert, srvKey, caFile, false)
		if err != nil {
			t.Fatal(err)
		}
		if opt.ClientAuth != tls.VerifyClientCertIfGiven {
			t.Errorf("client auth %v", opt.ClientAuth)
		}
		if peer, serr, cerr := handshake(t, opt, client(caFile, "", "")); serr != nil || cerr != nil || len(peer) != 0 {
			t.Errorf("without a certificate: server %v, client %v", serr, cerr)
		}
		if _, serr, _ := handshake(t, opt, client(caFile, strangerCert, strangerKey)); serr == nil {
			t.Error("a certificate of another CA was accepted")
		}
	})
}

func TestExpired(t *testing.T) {
	caDir := newCA(t)
	caFile := filepath.Join(caDir, CACertFile)
	now := time.Now()
	notAfter := now.Add(-72 * time.Hour).Truncate(time.Second)
	oldCert, oldKey, err := issue(IssueRequest{CADir: caDir, Name: "old", Kind: KindClient}, now.AddDate(0, 0, -30), notAfter)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadClientTLS(caFile, oldCert, oldKey, "")
	var exp *ExpiredError
	var fe *FileError
	if !errors.As(err, &exp) || !errors.As(err, &fe) || fe.Setting != "cert_file" || fe.Path != oldCert || !exp.NotAfter.Equal(notAfter) {
		t.Fatalf("expired: %v", err)
	}
	want := `cert_file ` + oldCert + `: certificate "old" expired at ` + notAfter.UTC().Format(time.RFC3339) + " (3 days ago)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message\n %s\nwant prefix\n %s", err, want)
	}
	srvCert, srvKey, err := issue(IssueRequest{CADir: caDir, Name: "old-server", Kind: KindServer, Hosts: []string{"s1"}}, now.AddDate(0, 0, -30), notAfter)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadServerTLS(srvCert, srvKey, "", false); !errors.As(err, &exp) {
		t.Errorf("expired server certificate: %v", err)
	}

	futureCert, futureKey, err := issue(IssueRequest{CADir: caDir, Name: "future", Kind: KindClient}, now.Add(48*time.Hour), now.AddDate(0, 0, 30))
	if err != nil {
		t.Fatal(err)
	}
	var nyv *NotYetValidError
	if _, err := LoadClientTLS(caFile, futureCert, futureKey, ""); !errors.As(err, &nyv) || !strings.Contains(err.Error(), "is this host's clock right?") {
		t.Errorf("not yet valid: %v", err)
	}

	// An expired CA file.
	old := filepath.Join(t.TempDir(), "old")
	if _, _, err := initCA(old, false, now.AddDate(-11, 0, 0)); err != nil {
		t.Fatal(err)
	}
	_, err = LoadClientTLS(filepath.Join(old, CACertFile), "", "", "")
	if !errors.As(err, &exp) || !errors.As(err, &fe) || fe.Setting != "ca_file" || !strings.Contains(err.Error(), "Bulwark cluster CA") {
		t.Errorf("expired CA: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	caDir := newCA(t)
	caFile := filepath.Join(caDir, CACertFile)
	cert, key := mustIssue(t, caDir, "alice", KindClient)
	bobCert, bobKey := mustIssue(t, caDir, "bob", KindClient)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not PEM\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	openKey := filepath.Join(dir, "open-key.pem")
	data, _ := os.ReadFile(key)
	if err := os.WriteFile(openKey, data, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	certAsKey := filepath.Join(dir, "cert-as-key.pem")
	data, _ = os.ReadFile(bobCert)
	if err := os.WriteFile(certAsKey, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name               string
		ca, cert, key      string
		setting, wantError string
	}{
		{"CA file without certificates", empty, "", "", "ca_file", "ca_file " + empty + ": no certificates found"},
		{"CA file is a key", bobKey, "", "", "ca_file", "no certificates found (it holds a private key: is this the key file?)"},
		{"missing CA file", missing, "", "", "ca_file", "ca_file " + missing + ": does not exist"},
		{"missing certificate", caFile, missing, key, "cert_file", "cert_file " + missing + ": does not exist"},
		{"key of another certificate", caFile, cert, bobKey, "key_file", "key_file " + bobKey + `: cert and key do not match: this is not the key of the certificate "alice" in ` + cert},
		{"key is a certificate", caFile, cert, certAsKey, "key_file", "no private key found (it holds a certificate: is this the certificate file?)"},
		{"key readable by everyone", caFile, cert, openKey, "key_file", "readable by everyone (mode 0644)"},
		{"certificate without key", caFile, cert, "", "key_file", "a certificate is given without its key file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadClientTLS(c.ca, c.cert, c.key, "")
			var fe *FileError
			if !errors.As(err, &fe) || fe.Setting != c.setting || !strings.Contains(err.Error(), c.wantError) {
				t.Fatalf("error %v, want %s: %q", err, c.setting, c.wantError)
			}
		})
	}
	if _, err := LoadServerTLS("", "", "", false); err == nil {
		t.Error("server without certificate")
	}
	srvCert, srvKey := mustIssue(t, caDir, "s1", KindServer, "s1")
	if _, err := LoadServerTLS(srvCert, srvKey, "", true); err == nil || !strings.Contains(err.Error(), "needs the CA file") {
		t.Errorf("requireClient without CA: %v", err)
	}
}
