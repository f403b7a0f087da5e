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

// The daemons build their TLS configurations with package pki (cmd/bulwarkd
// etcdTLS and the agent API's and agent client's), which also checks
// expiry and key usage; CheckFiles is the part that needs no more than the
// configuration: the files exist, a key is not readable by everyone and a
// certificate matches its key.

// CheckFiles checks that the etcd TLS files can be read and parsed, and
// that every fence device's password file and CA file can: a password file
// must be a regular file that neither its group nor others may access
// (mode 0600 or 0400), holding the password (one trailing newline is
// ignored) and nothing else; and agents.ca_file.
func (s *Server) CheckFiles() error {
	ps := checkEtcdFiles(s.Etcd, s.origins)
	if s.AgentsCAFile != "" {
		if _, err := loadCA(s.AgentsCAFile); err != nil {
			ps = append(ps, Problem{Origin: s.origins.get("agents.ca_file"), Key: "agents.ca_file", Msg: err.Error()})
		}
	}
	ps = append(ps, checkFenceFiles(s.Fencing, s.origins)...)
	return asError(dedupe(ps))
}

// CheckFiles checks the etcd TLS files and the agent API's certificate
// and key (http_tls). The deprecated bmc.password_file is not read: the
// agent ignores it.
func (a *Agent) CheckFiles() error {
	ps := checkEtcdFiles(a.Etcd, a.origins)
	ps = append(ps, checkPair(a.HTTPTLSCertFile, a.HTTPTLSKeyFile, "http_tls.cert_file", "http_tls.key_file", a.origins)...)
	return asError(ps)
}

// Password reads the BMC password: the first line of PasswordFile.
//
// Deprecated: the agent's bmc settings are ignored; see BMC.
func (b BMC) Password() (string, error) { return readPassword(b.PasswordFile) }

func checkFenceFiles(f Fencing, o origins) []Problem {
	var ps []Problem
	for _, d := range f.Devices() {
		if d.PasswordFile != "" {
			if _, err := ReadFencePassword(d.PasswordFile); err != nil {
				ps = append(ps, Problem{Origin: o.get(d.Key("password_file")), Key: d.Key("password_file"), Msg: err.Error()})
			}
		}
		if d.CAFile != "" {
			if _, err := loadCA(d.CAFile); err != nil {
				ps = append(ps, Problem{Origin: o.get(d.Key("ca_file")), Key: d.Key("ca_file"), Msg: err.Error()})
			}
		}
	}
	return ps
}

// ReadFencePassword reads a fence device's password file as the fencing
// code does (the whole file, one trailing newline ignored) and refuses a
// file its group or others may access, an empty one and one of several
// lines.
func ReadFencePassword(path string) (string, error) {
	fi, err := statRegular(path)
	if err != nil {
		return "", err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o: it holds a BMC password, so neither its group nor others may have any access; "+
			"make it 0600 (or 0400), owned by the server's user (bulwark)", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", path, cause(err))
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	switch {
	case pw == "":
		return "", fmt.Errorf("%s is empty: put the BMC password in it", path)
	case strings.ContainsAny(pw, "\r\n"):
		return "", fmt.Errorf("%s has more than one line: it must hold the password alone (one trailing newline is ignored)", path)
	}
	return pw, nil
}

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
	return append(ps, checkPair(e.CertFile, e.KeyFile, "etcd.cert_file", "etcd.key_file", o)...)
}

// checkPair checks a certificate file and its key file: readable, the key
// not by everyone, and a matching PEM pair.
func checkPair(certFile, keyFile, certKey, keyKey string, o origins) []Problem {
	var ps []Problem
	add := func(key string, err error) {
		ps = append(ps, Problem{Origin: o.get(key), Key: key, Msg: err.Error()})
	}
	var cert, key []byte
	var err error
	if certFile != "" {
		if cert, err = readRegular(certFile, false); err != nil {
			add(certKey, err)
		}
	}
	if keyFile != "" {
		if key, err = readRegular(keyFile, true); err != nil {
			add(keyKey, err)
		}
	}
	if cert != nil && key != nil {
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			add(keyKey, keyPairError(certFile, keyFile, err))
		}
	}
	return ps
}

func keyPairError(certFile, keyFile string, err error) error {
	return fmt.Errorf("%s and %s are not a PEM certificate and its key: %v", certFile, keyFile, err)
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
	fi, err := statRegular(path)
	switch {
	case err != nil:
		return nil, err
	case secret && fi.Mode().Perm()&0o004 != 0:
		return nil, fmt.Errorf("%s is readable by everyone (mode %04o): it holds a secret; chmod o-rwx it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, cause(err))
	}
	return data, nil
}

// statRegular finds a regular file (following symbolic links).
func statRegular(path string) (fs.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist", path)
	case err != nil:
		return nil, fmt.Errorf("cannot read %s: %v", path, cause(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return fi, nil
}

// cause drops the operation and path from an *fs.PathError.
func cause(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}
