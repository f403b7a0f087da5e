package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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
			tc, err := cfg.Etcd.TLSConfig()
			if err != nil || tc == nil || tc.RootCAs == nil {
				t.Errorf("%s: TLSConfig %v %v", c.name, tc, err)
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
		if _, err := cfg.Etcd.TLSConfig(); err == nil {
			t.Errorf("%s: TLSConfig has no error", c.name)
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
	tc, err := Etcd{CAFile: ca, CertFile: cert, KeyFile: key}.TLSConfig()
	if err != nil || len(tc.Certificates) != 1 || tc.RootCAs == nil {
		t.Errorf("TLSConfig: %+v, %v", tc, err)
	}
	if tc, err := (Etcd{}).TLSConfig(); tc != nil || err != nil {
		t.Errorf("TLSConfig without files: %v %v", tc, err)
	}
}

func TestCheckFilesBMCPassword(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "pw", "s3cret\nignored\n")
	empty := writeFile(t, dir, "empty", "\n")
	open := writeFile(t, dir, "open", "s3cret\n")
	for _, p := range []string{good, empty} {
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		file, want string
	}{
		{good, ""},
		{missing, missing + " does not exist"},
		{empty, empty + " is empty: put the password on its first line"},
		{open, open + " is readable by everyone (mode 0644): it holds a secret"},
	} {
		p := writeFile(t, t.TempDir(), "a.yaml", "kind: agent\nbmc:\n  url: https://bmc\n  username: u\n  password_file: "+c.file+"\n")
		cfg, err := LoadAgent(Inputs{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.CheckFiles()
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.file, err)
			}
			if pw, err := cfg.BMC.Password(); pw != "s3cret" || err != nil {
				t.Errorf("Password() = %q, %v", pw, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), p+":5:18: bmc.password_file: "+c.want) {
			t.Errorf("%s: %v, want %s", c.file, err, c.want)
		}
	}
}
