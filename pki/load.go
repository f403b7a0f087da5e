package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// FileError is a problem with one of the files a tls.Config is built
// from. Setting names the file's role as the last part of a config key
// ("ca_file", "cert_file" or "key_file"), so that a caller can report it
// under its own key (etcd.ca_file).
type FileError struct {
	Setting string
	Path    string
	Err     error
}

func (e *FileError) Error() string { return e.Setting + " " + e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// ExpiredError is a certificate past its NotAfter.
type ExpiredError struct {
	Subject  string
	NotAfter time.Time
	// Now is when it was checked.
	Now time.Time
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("certificate %q expired at %s (%s ago): issue a new one", e.Subject,
		e.NotAfter.UTC().Format(time.RFC3339), roughly(e.Now.Sub(e.NotAfter)))
}

// NotYetValidError is a certificate before its NotBefore: usually a clock
// that is wrong, here or where the certificate was issued.
type NotYetValidError struct {
	Subject   string
	NotBefore time.Time
	Now       time.Time
}

func (e *NotYetValidError) Error() string {
	return fmt.Sprintf("certificate %q is not valid before %s (%s from now): is this host's clock right?", e.Subject,
		e.NotBefore.UTC().Format(time.RFC3339), roughly(e.NotBefore.Sub(e.Now)))
}

// roughly renders d in the largest fitting unit.
func roughly(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.Round(time.Second).String()
}

// LoadClientTLS builds the configuration of a TLS client: it trusts the
// CAs in caFile (the system's when empty) and presents the certificate in
// certFile with the key in keyFile (none when both are empty). serverName
// overrides the name checked against the server's certificate; empty means
// the host of the address dialled. TLS 1.2 is the minimum.
//
// Problems are *FileError: a file that is missing or holds no certificate
// or key, a certificate and key that do not match, a certificate that has
// expired or is not valid yet, or one that may not authenticate a client.
func LoadClientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	now := time.Now()
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := loadPool(caFile, now)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		kp, err := loadKeyPair(certFile, keyFile, x509.ExtKeyUsageClientAuth, now)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{kp}
		// Go's client sends its certificate only if the server lists the
		// certificate's issuer among the CAs it accepts; otherwise it sends
		// none and the server reports a missing certificate, which misleads
		// whoever configured one. Sending it always lets the server say
		// what is wrong with it (the client then reads "unknown certificate
		// authority" rather than "certificate required").
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	return c, nil
}

// LoadServerTLS builds the configuration of a TLS server presenting the
// certificate in certFile with the key in keyFile. With clientCAFile,
// client certificates are verified against its CAs: required when
// requireClient, otherwise checked if one is presented. TLS 1.2 is the
// minimum. Problems are *FileError, as for LoadClientTLS.
func LoadServerTLS(certFile, keyFile, clientCAFile string, requireClient bool) (*tls.Config, error) {
	now := time.Now()
	if certFile == "" || keyFile == "" {
		return nil, errors.New("a TLS server needs both a certificate file and a key file")
	}
	kp, err := loadKeyPair(certFile, keyFile, x509.ExtKeyUsageServerAuth, now)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}}
	switch {
	case clientCAFile != "":
		pool, err := loadPool(clientCAFile, now)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if requireClient {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	case requireClient:
		return nil, errors.New("requiring client certificates needs the CA file that signed them")
	}
	return c, nil
}

// loadPool reads a CA bundle. A bundle whose every certificate has expired
// is refused (one expired CA beside a current one is a rotation).
func loadPool(path string, now time.Time) (*x509.CertPool, error) {
	certs, err := readCerts(path)
	if err != nil {
		return nil, &FileError{Setting: "ca_file", Path: path, Err: err}
	}
	pool := x509.NewCertPool()
	var latest *x509.Certificate
	for _, c := range certs {
		pool.AddCert(c)
		if latest == nil || c.NotAfter.After(latest.NotAfter) {
			latest = c
		}
	}
	if now.After(latest.NotAfter) {
		return nil, &FileError{Setting: "ca_file", Path: path,
			Err: &ExpiredError{Subject: latest.Subject.CommonName, NotAfter: latest.NotAfter, Now: now}}
	}
	return pool, nil
}

// loadKeyPair reads a certificate (chain) and its key and checks that
// they match, that the certificate is valid now and that it may be used
// for usage.
func loadKeyPair(certFile, keyFile string, usage x509.ExtKeyUsage, now time.Time) (tls.Certificate, error) {
	switch {
	case certFile == "":
		return tls.Certificate{}, &FileError{Setting: "cert_file", Path: "(none)", Err: errors.New("a key file is given without its certificate")}
	case keyFile == "":
		return tls.Certificate{}, &FileError{Setting: "key_file", Path: "(none)", Err: errors.New("a certificate is given without its key file")}
	}
	certs, err := readCerts(certFile)
	if err != nil {
		return tls.Certificate{}, &FileError{Setting: "cert_file", Path: certFile, Err: err}
	}
	key, err := readKey(keyFile)
	if err != nil {
		return tls.Certificate{}, &FileError{Setting: "key_file", Path: keyFile, Err: err}
	}
	leaf := certs[0]
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return tls.Certificate{}, &FileError{Setting: "key_file", Path: keyFile,
			Err: fmt.Errorf("cert and key do not match: this is not the key of the certificate %q in %s", leaf.Subject.CommonName, certFile)}
	}
	switch {
	case now.After(leaf.NotAfter):
		return tls.Certificate{}, &FileError{Setting: "cert_file", Path: certFile,
			Err: &ExpiredError{Subject: leaf.Subject.CommonName, NotAfter: leaf.NotAfter, Now: now}}
	case now.Before(leaf.NotBefore):
		return tls.Certificate{}, &FileError{Setting: "cert_file", Path: certFile,
			Err: &NotYetValidError{Subject: leaf.Subject.CommonName, NotBefore: leaf.NotBefore, Now: now}}
	}
	if !allows(leaf, usage) {
		return tls.Certificate{}, &FileError{Setting: "cert_file", Path: certFile, Err: usageError(leaf, usage)}
	}
	kp := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		kp.Certificate = append(kp.Certificate, c.Raw)
	}
	return kp, nil
}

// allows reports whether cert may be used for usage: no extended key usage
// at all means any.
func allows(cert *x509.Certificate, usage x509.ExtKeyUsage) bool {
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range cert.ExtKeyUsage {
		if u == usage || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func usageError(cert *x509.Certificate, want x509.ExtKeyUsage) error {
	var has []string
	for _, u := range cert.ExtKeyUsage {
		has = append(has, usageName(u))
	}
	if len(has) == 0 {
		has = []string{"none known"}
	}
	role, kinds := "a client", "client, agent or etcd"
	if want == x509.ExtKeyUsageServerAuth {
		role, kinds = "a server", "server, agent or etcd"
	}
	return fmt.Errorf("certificate %q cannot authenticate %s (its extended key usage: %s; %s needed): issue one of kind %s",
		cert.Subject.CommonName, role, strings.Join(has, ", "), usageName(want), kinds)
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageAny:
		return "any"
	}
	return fmt.Sprintf("usage %d", u)
}

// readCerts reads every certificate of a PEM file. Errors do not name
// the file: callers do.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(err)
	}
	var certs []*x509.Certificate
	sawKey := false
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			sawKey = true
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if sawKey {
			return nil, errors.New("no certificates found (it holds a private key: is this the key file?)")
		}
		return nil, errors.New("no certificates found")
	}
	return certs, nil
}

// readKey reads the first private key of a PEM file; a key that everyone
// may read is refused.
func readKey(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, readError(err)
	}
	if perm := fi.Mode().Perm(); perm&0o004 != 0 {
		return nil, fmt.Errorf("readable by everyone (mode %04o): it holds a private key; chmod 0600 it", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(err)
	}
	sawCert := false
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var k any
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "CERTIFICATE":
			sawCert = true
			continue
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.ToLower(b.Type), err)
		}
		switch k := k.(type) {
		case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		}
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	if sawCert {
		return nil, errors.New("no private key found (it holds a certificate: is this the certificate file?)")
	}
	return nil, errors.New("no private key found")
}

// errMissing is a file that does not exist; errors.Is(err, fs.ErrNotExist)
// holds for it.
type errMissing struct{}

func (errMissing) Error() string        { return "does not exist" }
func (errMissing) Is(target error) bool { return target == fs.ErrNotExist }

// readError words a failed read; the caller names the path.
func readError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errMissing{}
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied for this user (uid %d)", os.Getuid())
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// ReadCertificate reads the first certificate of a PEM file, e.g. to show
// what Issue wrote or when a certificate expires.
func ReadCertificate(path string) (*x509.Certificate, error) {
	certs, err := readCerts(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs[0], nil
}
