package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// CheckFiles checks that the etcd TLS files can be read and parsed.
func (s *Server) CheckFiles() error {
	return asError(checkEtcdFiles(s.Etcd, s.origins))
}

// CheckFiles checks the etcd TLS files and the BMC password file.
func (a *Agent) CheckFiles() error {
	ps := checkEtcdFiles(a.Etcd, a.origins)
	if p := a.BMC.PasswordFile; p != "" {
		if _, err := readPassword(p); err != nil {
			ps = append(ps, Problem{Origin: a.origins.get("bmc.password_file"), Key: "bmc.password_file", Msg: err.Error()})
		}
	}
	return asError(ps)
}

// Password reads the BMC password: the first line of PasswordFile.
func (b BMC) Password() (string, error) { return readPassword(b.PasswordFile) }

func checkEtcdFiles(e Etcd, o origins) []Problem {
	var ps []Problem
	add := func(key string, err error) {
		ps = append(ps, Problem{Origin: o.get(key), Key: key, Msg: err.Error()})
	}
	if e.CAFile != "" {
		if _, err := loadCA(e.CAFile); err != nil {
			add("etcd.ca_file", err)
		}
	}
	var cert, key []byte
	var err error
	if e.CertFile != "" {
		if cert, err = readRegular(e.CertFile, false); err != nil {
			add("etcd.cert_file", err)
		}
	}
	if e.KeyFile != "" {
		if key, err = readRegular(e.KeyFile, true); err != nil {
			add("etcd.key_file", err)
		}
	}
	if cert != nil && key != nil {
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			add("etcd.key_file", keyPairError(e.CertFile, e.KeyFile, err))
		}
	}
	return ps
}

func keyPairError(certFile, keyFile string, err error) error {
	return fmt.Errorf("%s and %s are not a PEM certificate and its key: %v", certFile, keyFile, err)
}

// TLSConfig is the client TLS configuration for etcd built from the files;
// nil when no TLS file is set. (The etcd client does not take it yet.)
func (e Etcd) TLSConfig() (*tls.Config, error) {
	if !e.TLSEnabled() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pool, err := loadCA(e.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if e.CertFile != "" || e.KeyFile != "" {
		kp, err := loadKeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	data, err := readRegular(path, false)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := readRegular(certFile, false)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := readRegular(keyFile, true)
	if err != nil {
		return tls.Certificate{}, err
	}
	kp, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, keyPairError(certFile, keyFile, err)
	}
	return kp, nil
}

func readPassword(path string) (string, error) {
	data, err := readRegular(path, true)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s is empty: put the password on its first line", path)
	}
	return line, nil
}

// readRegular reads a regular file; a secret must not be readable by everyone.
func readRegular(path string, secret bool) ([]byte, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist", path)
	case err != nil:
		return nil, fmt.Errorf("cannot read %s: %v", path, cause(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	case secret && fi.Mode().Perm()&0o004 != 0:
		return nil, fmt.Errorf("%s is readable by everyone (mode %04o): it holds a secret; chmod o-rwx it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, cause(err))
	}
	return data, nil
}

// cause drops the operation and path from an *fs.PathError.
func cause(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}
