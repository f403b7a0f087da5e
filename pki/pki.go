// Package pki makes a small cluster certificate authority and the
// certificates that Bulwark's servers and agents, the etcd members and the
// operators use, and loads such files as tls.Config. It is meant to secure a
// cluster of a few hosts in a few commands (`bulwarkd ca init`, `bulwarkd
// cert issue`); a site with its own CA can ignore the issuing half and still
// use the loaders.
//
// Keys are ECDSA P-256: Go's crypto/tls, etcd (Go as well), OpenSSL and curl
// all accept it, which is not yet true of Ed25519 everywhere. Private keys
// are written as PKCS #8 ("PRIVATE KEY"), mode 0600; certificates 0644.
// Every file is written to a temporary file and renamed into place, so a
// reader never sees half a file.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// File names of the CA inside its directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// Certificate kinds for IssueRequest.Kind.
const (
	// KindServer is an API server: serverAuth, with the hosts as SANs.
	KindServer = "server"
	// KindAgent is a node agent: clientAuth (to etcd and to the servers)
	// and serverAuth (agents serve an API too).
	KindAgent = "agent"
	// KindClient is an operator or a tool: clientAuth only.
	KindClient = "client"
	// KindEtcd is an etcd member: serverAuth for its clients and peers,
	// clientAuth for its peers and its own gateway.
	KindEtcd = "etcd"
)

// Kinds are the valid IssueRequest.Kind values, in the order help texts
// list them.
func Kinds() []string { return []string{KindServer, KindAgent, KindClient, KindEtcd} }

const (
	// DefaultDays is a leaf certificate's default lifetime: 825 days, the
	// most that Apple's TLS clients accept and a common ceiling elsewhere.
	DefaultDays = 825
	// caYears is the CA's lifetime. Renewing a CA means re-issuing every
	// certificate, so it is long; the leaves are what expire routinely.
	caYears = 10
	// backdate is how far NotBefore is set in the past, so that a host
	// whose clock is a little behind the issuer's accepts a fresh
	// certificate.
	backdate = 5 * time.Minute
	// organization is the O of every subject.
	organization = "Bulwark"
)

// InitCA writes ca.pem (0644) and ca-key.pem (0600) into dir, creating dir
// (0700) if needed: a self-signed ECDSA P-256 CA valid for 10 years, whose
// common name is "Bulwark cluster CA " and a random suffix, so that two
// clusters' CAs are told apart in error messages. It refuses to replace an
// existing CA (the error wraps fs.ErrExist) unless force: every certificate
// the old CA signed would stop being trusted.
func InitCA(dir string, force bool) (certPath, keyPath string, err error) {
	return initCA(dir, force, time.Now())
}

func initCA(dir string, force bool, now time.Time) (certPath, keyPath string, err error) {
	if dir == "" {
		return "", "", errors.New("init CA: no directory given")
	}
	certPath, keyPath = filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if !force {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return "", "", fmt.Errorf("init CA: %s already exists (%w): replacing the CA means every certificate it signed "+
					"stops being trusted", p, fs.ErrExist)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("init CA: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "Bulwark cluster CA " + hex.EncodeToString(suffix),
			Organization: []string{organization},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(caYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// It signs leaves only, never another CA.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", fmt.Errorf("init CA: create certificate: %w", err)
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return "", "", fmt.Errorf("init CA: %w", err)
	}
	return certPath, keyPath, nil
}

// IssueRequest describes one certificate for Issue.
type IssueRequest struct {
	// CADir holds ca.pem and ca-key.pem (from InitCA).
	CADir string
	// Name is the certificate's common name and the base of its file
	// names: a DNS label such as a host name ("host-1") or an operator's
	// name. "ca" is reserved for the CA's own files.
	Name string
	// Kind is KindServer, KindAgent, KindClient or KindEtcd.
	Kind string
	// Hosts are the DNS names and IP addresses clients use to reach the
	// holder; they become the subject alternative names. Server, agent and
	// etcd certificates need at least one; client certificates take none.
	Hosts []string
	// Days is the lifetime (default DefaultDays). It cannot outlast the CA.
	Days int
	// OutDir receives <Name>.pem and <Name>-key.pem (default CADir).
	OutDir string
	// Force replaces existing files of the same name (a renewal); without
	// it Issue refuses, so that an agent's certificate does not silently
	// replace a server's of the same name.
	Force bool
}

// Issue writes <Name>.pem (0644) and <Name>-key.pem (0600) into OutDir: a
// new ECDSA P-256 key and a certificate for it signed by the CA in CADir.
// The subject is CN=<Name>, O=Bulwark, OU=<Kind> (see Identity).
func Issue(r IssueRequest) (certPath, keyPath string, err error) {
	now := time.Now()
	days := r.Days
	if days == 0 {
		days = DefaultDays
	}
	return issue(r, now.Add(-backdate), now.AddDate(0, 0, days))
}

// issue is Issue with explicit validity, so that tests can make expired
// and not-yet-valid certificates.
func issue(r IssueRequest, notBefore, notAfter time.Time) (certPath, keyPath string, err error) {
	fail := func(err error) (string, string, error) {
		return "", "", fmt.Errorf("issue %s certificate %q: %w", r.Kind, r.Name, err)
	}
	if err := api.ValidateName("certificate", r.Name); err != nil {
		return fail(err)
	}
	if r.Name == "ca" {
		return fail(errors.New(`the name "ca" is reserved for the CA's own files`))
	}
	usages, err := extKeyUsages(r.Kind)
	if err != nil {
		return fail(err)
	}
	if r.Days < 0 {
		return fail(fmt.Errorf("days %d: a lifetime must be positive", r.Days))
	}
	dnsNames, ips, err := parseHosts(r.Hosts)
	if err != nil {
		return fail(err)
	}
	switch {
	case r.Kind == KindClient && len(r.Hosts) > 0:
		return fail(errors.New("a client certificate names no hosts: it identifies a person or tool, not an address"))
	case r.Kind != KindClient && len(r.Hosts) == 0:
		return fail(fmt.Errorf("a %s certificate needs at least one host: the DNS names and IP addresses that clients "+
			"use to reach it (TLS checks the address against them)", r.Kind))
	}
	if r.CADir == "" {
		return fail(errors.New("no CA directory given"))
	}
	ca, caKey, err := loadCA(r.CADir, time.Now())
	if err != nil {
		return fail(err)
	}
	if notAfter.After(ca.NotAfter) {
		return fail(fmt.Errorf("it would expire %s, after the CA itself (%s): ask for fewer days or make a new CA",
			notAfter.UTC().Format(time.DateOnly), ca.NotAfter.UTC().Format(time.DateOnly)))
	}
	outDir := r.OutDir
	if outDir == "" {
		outDir = r.CADir
	}
	certPath, keyPath = filepath.Join(outDir, r.Name+".pem"), filepath.Join(outDir, r.Name+"-key.pem")
	if !r.Force {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return fail(fmt.Errorf("%s already exists (%w)", p, fs.ErrExist))
			}
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fail(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(fmt.Errorf("generate key: %w", err))
	}
	serial, err := randomSerial()
	if err != nil {
		return fail(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         r.Name,
			Organization:       []string{organization},
			OrganizationalUnit: []string{r.Kind},
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usages,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fail(fmt.Errorf("sign: %w", err))
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return fail(err)
	}
	return certPath, keyPath, nil
}

// Identity is what a certificate issued by Issue says about its holder:
// the name (CN) and the kind (OU), e.g. "host-1", "agent". A server that
// verified a client certificate against the cluster CA can use it to tell
// which host's agent is calling. kind is empty for certificates made
// elsewhere.
func Identity(cert *x509.Certificate) (name, kind string) {
	for _, ou := range cert.Subject.OrganizationalUnit {
		for _, k := range Kinds() {
			if ou == k {
				kind = k
			}
		}
	}
	return cert.Subject.CommonName, kind
}

func extKeyUsages(kind string) ([]x509.ExtKeyUsage, error) {
	switch kind {
	case KindServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil
	case KindAgent, KindEtcd:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil
	case KindClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	case "":
		return nil, fmt.Errorf("no kind given: use one of %s", strings.Join(Kinds(), ", "))
	}
	return nil, fmt.Errorf("unknown kind %q: use one of %s", kind, strings.Join(Kinds(), ", "))
}

// parseHosts splits hosts into DNS names (lowercased) and IP addresses,
// dropping duplicates.
func parseHosts(hosts []string) (dnsNames []string, ips []net.IP, err error) {
	seen := map[string]bool{}
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Zone() != "" {
				return nil, nil, fmt.Errorf("host %q: an IP address in a certificate has no zone", h)
			}
			if !seen[a.String()] {
				seen[a.String()] = true
				ips = append(ips, net.IP(a.AsSlice()))
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if err := checkDNSName(name); err != nil {
			return nil, nil, fmt.Errorf("host %q: %w", h, err)
		}
		if !seen[name] {
			seen[name] = true
			dnsNames = append(dnsNames, name)
		}
	}
	return dnsNames, ips, nil
}

// checkDNSName accepts a host name of DNS labels (no wildcards: each
// holder gets its own certificate).
func checkDNSName(name string) error {
	if name == "" {
		return errors.New("empty host name")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if err := api.ValidateName("host", label); err != nil {
			return fmt.Errorf("not an IP address or a DNS name: %w", err)
		}
	}
	return nil
}

// loadCA reads the CA from dir and checks that it can sign at time at.
func loadCA(dir string, at time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certs, err := readCerts(certPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no CA in %s (%s is missing): create one with `bulwarkd ca init --dir %s`", dir, CACertFile, dir)
		}
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	ca := certs[0]
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("%s: %q is not a CA certificate", certPath, ca.Subject.CommonName)
	}
	if at.After(ca.NotAfter) {
		return nil, nil, fmt.Errorf("%s: %w", certPath, &ExpiredError{Subject: ca.Subject.CommonName, NotAfter: ca.NotAfter, Now: at})
	}
	key, err := readKey(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !publicKeysEqual(ca.PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("%s and %s: cert and key do not match", certPath, keyPath)
	}
	return ca, key, nil
}

func randomSerial() (*big.Int, error) {
	// 128 random bits (RFC 5280 allows up to 20 octets, positive).
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x01 // never zero
	return new(big.Int).SetBytes(b), nil
}

// writePair writes the key first, then the certificate: a reader that
// finds the certificate finds its key.
func writePair(certPath, keyPath string, certDER []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644)
}

// writeFileAtomic writes data to a temporary file in path's directory,
// with mode perm from the start (a key is never readable by others, not
// even for a moment), syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	// CreateTemp makes the file 0600; Chmod sets perm exactly, whatever
	// the umask.
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable; a failure here leaves a complete file.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
