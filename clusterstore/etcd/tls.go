package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"time"
)

// checkSchemes refuses endpoints that would not use TLS although TLS is
// configured: the etcd client silently drops TLS for http:// endpoints.
func checkSchemes(endpoints []string, withTLS bool) error {
	if !withTLS {
		return nil
	}
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("endpoint %q: %w", ep, err)
		}
		if u.Scheme != "https" {
			return fmt.Errorf("endpoint %q is not https:// but TLS is configured: the client would connect without it", ep)
		}
	}
	return nil
}

// diagnoseMinTimeout is the least time diagnoseTLS gives each endpoint.
const diagnoseMinTimeout = 2 * time.Second

// anyHTTPS reports whether an endpoint uses TLS.
func anyHTTPS(endpoints []string) bool {
	for _, ep := range endpoints {
		if u, err := url.Parse(ep); err == nil && u.Scheme == "https" {
			return true
		}
	}
	return false
}

// diagnoseTLS connects to each https endpoint with cfg (nil: the system's
// CAs, as the etcd client uses then) as the etcd client does and says what
// went wrong: the client's own probe only times out, since gRPC keeps
// retrying a failed handshake. nil when every endpoint completed a TLS
// exchange.
func diagnoseTLS(ctx context.Context, endpoints []string, timeout time.Duration, cfg *tls.Config) error {
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// A handshake takes milliseconds; the floor keeps a loaded machine
	// from turning the explanation into one more timeout.
	timeout = max(timeout, diagnoseMinTimeout)
	errs := make([]error, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		if u, err := url.Parse(ep); err != nil || u.Scheme != "https" {
			continue
		}
		wg.Go(func() {
			if err := probeTLS(ctx, ep, timeout, cfg); err != nil {
				errs[i] = fmt.Errorf("TLS to %s: %w", ep, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// probeTLS makes one TLS connection to ep and sends an HTTP request for
// etcd's /health: a server that refuses the client's certificate in TLS
// 1.3 says so only after the client's side of the handshake is done, at
// the first read.
func probeTLS(ctx context.Context, ep string, timeout time.Duration, cfg *tls.Config) error {
	u, err := url.Parse(ep)
	if err != nil {
		return err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	c := cfg.Clone()
	if c.ServerName == "" {
		c.ServerName = u.Hostname()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: c}
	hasCert := len(c.Certificates) > 0 || c.GetClientCertificate != nil
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return explainTLS(err, hasCert)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(conn, "GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", u.Host); err != nil {
		return explainTLS(err, hasCert)
	}
	_, err = conn.Read(make([]byte, 1))
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
		// TLS is fine; whatever failed is not this package's to explain.
		return nil
	}
	return explainTLS(err, hasCert)
}

// explainTLS adds what a TLS failure means in etcd's terms. hasCert
// tells whether the client offered a certificate: etcd built with an
// older Go answers a missing one with "bad certificate".
func explainTLS(err error, hasCert bool) error {
	var hint string
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var op *net.OpError
	switch {
	case errors.As(err, &unknownCA):
		hint = "etcd's certificate is not signed by a CA this client trusts: the CA file given, or the system's without one"
	case errors.As(err, &hostname):
		hint = "etcd's certificate does not name the host of this endpoint"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		hint = "etcd's certificate has expired or is not valid yet"
	case errors.As(err, &op) && op.Op == "remote error":
		// etcd's alert, by its text (crypto/tls does not export the type).
		switch op.Err.Error() {
		case "tls: certificate required":
			hint = "etcd requires a client certificate and none was given"
		case "tls: unknown certificate authority":
			hint = "etcd does not trust the CA that signed the client certificate"
		case "tls: expired certificate":
			hint = "etcd found the client certificate expired"
		case "tls: bad certificate", "tls: unsupported certificate":
			hint = "etcd refused the client certificate: is it one for clients, with clientAuth?"
			if !hasCert {
				hint = "etcd requires a client certificate and none was given"
			}
		}
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}
