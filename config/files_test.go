package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate and its key (mode 0600).
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestCheckFilesEtcdTLS(t *testing.T) {
	dir := t.TempDir()
	ca, _ := selfSigned(t, dir, "ca")
	cert, key := selfSigned(t, dir, "client")
	_, otherKey := selfSigned(t, dir, "other")
	notPEM := writeFile(t, dir, "not.pem", "hello\n")
	open := writeFile(t, dir, "open-key.pem", "x")
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	conf := func(ca, cert, key string) string {
		s := "kind: server\netcd:\n  endpoints: [https://a:2379]\n"
		if ca != "" {
			s += "  ca_file: " + ca + "\n"
		}
		if cert != "" {
			s += "  cert_file: " + cert + "\n  key_file: " + key + "\n"
		}
		return s
	}
	cases := []struct {
		name, body string
		want       []string // problem prefixes after the file name
	}{
		{"all good", conf(ca, cert, key), nil},
		{"ca only", conf(ca, "", ""), nil},
		{"ca missing", conf(missing, "", ""), []string{":4:12: etcd.ca_file: " + missing + " does not exist"}},
		{"ca not PEM", conf(notPEM, "", ""), []string{":4:12: etcd.ca_file: " + notPEM + " holds no PEM certificate"}},
		{"ca is a directory", conf(dir, "", ""), []string{":4:12: etcd.ca_file: " + dir + " is not a regular file"}},
		{"cert missing", conf("", missing, key), []string{":4:14: etcd.cert_file: " + missing + " does not exist"}},
		{"key missing", conf("", cert, missing), []string{":5:13: etcd.key_file: " + missing + " does not exist"}},
		{"key readable by everyone", conf("", cert, open), []string{":5:13: etcd.key_file: " + open + " is readable by everyone (mode 0644)"}},
		{"key of another cert", conf("", cert, otherKey), []string{":5:13: etcd.key_file: " + cert + " and " + otherKey + " are not a PEM certificate and its key"}},
		{"cert not PEM", conf("", notPEM, key), []string{":5:13: etcd.key_file: " + notPEM + " and " + key + " are not a PEM certificate and its key"}},
	}
	for _, c := range cases {
		p := writeFile(t, t.TempDir(), "s.yaml", c.body)
		cfg, err := LoadServer(Inputs{Path: p})
		if err != nil {
			t.Fatalf("%s: load: %v", c.name, err)
		}
		err = cfg.CheckFiles()
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		ps := problemsOf(t, err)
		if len(ps) != len(c.want) {
			t.Errorf("%s: %q, want %d problems", c.name, err, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(ps[i].Error(), p+w) {
				t.Errorf("%s: %q, want it to start with %q", c.name, ps[i].Error(), p+w)
			}
		}
	}
	// From a flag, the problem names the flag.
	cfg, err := LoadServer(Inputs{DefaultPath: missing, Flags: map[string][]string{"etcd": {"https://a:2379"}, "etcd-ca-file": {missing}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckFiles(); err == nil || err.Error() != "--etcd-ca-file: "+missing+" does not exist" {
		t.Errorf("flag: %v", err)
	}
}

// The agent's bmc settings are deprecated and ignored: the agent no longer
// reads the password file, so a missing or open one does not stop it.
func TestCheckFilesAgentIgnoresBMCPassword(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "pw", "s3cret\nignored\n")
	if err := os.Chmod(good, 0o600); err != nil {
		t.Fatal(err)
	}
	open := writeFile(t, dir, "open", "s3cret\n")
	for _, file := range []string{good, open, filepath.Join(dir, "missing")} {
		p := writeFile(t, t.TempDir(), "a.yaml", "kind: agent\nbmc:\n  url: https://bmc\n  username: u\n  password_file: "+file+"\n")
		cfg, err := LoadAgent(Inputs{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.CheckFiles(); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	if pw, err := (BMC{PasswordFile: good}).Password(); pw != "s3cret" || err != nil {
		t.Errorf("Password() = %q, %v", pw, err)
	}
}

func TestCheckFilesFencing(t *testing.T) {
	dir := t.TempDir()
	ca, _ := selfSigned(t, dir, "bmc-ca")
	pw := func(name, content string, mode os.FileMode) string {
		p := writeFile(t, dir, name, content)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := pw("good", "s3cret\n", 0o600)
	readOnly := pw("ro", "s3cret", 0o400)
	crlf := pw("crlf", "s3cret\r\n", 0o600)
	groupRead := pw("group-read", "s3cret\n", 0o640)
	groupWrite := pw("group-write", "s3cret\n", 0o620)
	world := pw("world", "s3cret\n", 0o604)
	empty := pw("empty", "\n", 0o600)
	twoLines := pw("two-lines", "s3cret\nmore\n", 0o600)
	notPEM := pw("not.pem", "hello\n", 0o644)
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		file, ca string
		key      string // of the problem; "" for none
		col      int
		want     string
	}{
		{good, ca, "", 0, ""},
		{readOnly, "", "", 0, ""},
		{crlf, "", "", 0, ""},
		{missing, "", "password_file", 24, missing + " does not exist"},
		{dir, "", "password_file", 24, dir + " is not a regular file"},
		{groupRead, "", "password_file", 24, groupRead + " has mode 0640: it holds a BMC password, so neither its group nor others may have any access; make it 0600 (or 0400)"},
		{groupWrite, "", "password_file", 24, groupWrite + " has mode 0620"},
		{world, "", "password_file", 24, world + " has mode 0604"},
		{empty, "", "password_file", 24, empty + " is empty: put the BMC password in it"},
		{twoLines, "", "password_file", 24, twoLines + " has more than one line"},
		{good, missing, "ca_file", 18, missing + " does not exist"},
		{good, notPEM, "ca_file", 18, notPEM + " holds no PEM certificate"},
	} {
		body := "kind: server\nfencing:\n  hosts:\n    host-1:\n      - type: redfish\n        url: https://10.0.1.11\n        username: u\n" +
			"        password_file: " + c.file + "\n"
		if c.ca != "" {
			body += "        ca_file: " + c.ca + "\n"
		}
		p := writeFile(t, t.TempDir(), "s.yaml", body)
		cfg, err := LoadServer(Inputs{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.CheckFiles()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.file, err)
			}
			if got, err := ReadFencePassword(c.file); got != "s3cret" || err != nil {
				t.Errorf("ReadFencePassword(%s) = %q, %v", c.file, got, err)
			}
			continue
		}
		line := 8
		if c.key == "ca_file" {
			line = 9
		}
		want := fmt.Sprintf("%s:%d:%d: fencing.hosts.host-1[1].%s: %s", p, line, c.col, c.key, c.want)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s", c.file, err, want)
		}
	}
}
