// Package etcdtest runs a real etcd binary for tests: by default Debian
// 12's /usr/bin/etcd (package etcd-server, etcd 3.4.23), the release
// docs/install.md tells production users to install, while the rest of
// the tests use the embedded etcd of go.mod (3.6).
//
// Each member is a process of its own on free loopback ports, with its
// data directory under t.TempDir(), serving clients over TLS, stopped when
// the test ends. When the binary is missing the test is skipped, saying so
// loudly, or fails under BULWARK_REQUIRE_REAL=1 (CI sets it; scripts/deps.sh
// test installs etcd-server).
package etcdtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/pki"
)

// RequireEnv, set to 1, turns a missing etcd binary into a failure.
const RequireEnv = "BULWARK_REQUIRE_REAL"

// BinaryEnv names another etcd binary than DefaultBinary.
const BinaryEnv = "BULWARK_TEST_ETCD"

// DefaultBinary is where Debian's etcd-server puts etcd.
const DefaultBinary = "/usr/bin/etcd"

// readyTimeout bounds a member's start.
const readyTimeout = 30 * time.Second

// Config is a member's TLS setup: the certificate it serves clients with
// (of kind etcd, with 127.0.0.1 among its names; its clientAuth usage is
// also what the readiness probe presents) and the CA it trusts.
type Config struct {
	CertFile, KeyFile, CAFile string
	// ClientCertAuth: --client-cert-auth (require a client certificate
	// and, with authentication on, take the user from its CN).
	ClientCertAuth bool
}

// Member is a running etcd process.
type Member struct {
	// Binary is the etcd that runs; Version its version, e.g. "3.4.23",
	// and Minor its minor number (4).
	Binary, Version string
	Minor           int
	// LogPath is the member's log (stderr).
	LogPath  string
	endpoint string
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
}

// Endpoints are the member's client URLs.
func (m *Member) Endpoints() []string { return []string{m.endpoint} }

// Binary returns the etcd binary to run and its version, or skips t (fails
// it under BULWARK_REQUIRE_REAL=1) when there is none.
func Binary(t testing.TB) (path, version string, minor int) {
	t.Helper()
	path = DefaultBinary
	if p := os.Getenv(BinaryEnv); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		why := fmt.Sprintf("no etcd binary at %s (%v)", path, err)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s=1 but %s: install Debian's etcd-server (scripts/deps.sh test does) or set %s", RequireEnv, why, BinaryEnv)
		}
		t.Skipf("SKIPPING TEST AGAINST A REAL ETCD BINARY: %s; install Debian's etcd-server (scripts/deps.sh test), "+
			"or set %s to an etcd binary (set %s=1 to make this a failure)", why, BinaryEnv, RequireEnv)
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", path, err, out)
	}
	m := regexp.MustCompile(`(?m)^etcd Version: (3\.([0-9]+)\.[0-9]+\S*)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --version: no \"etcd Version: 3.x.y\" line:\n%s", path, out)
	}
	minor, _ = strconv.Atoi(string(m[2]))
	return path, string(m[1]), minor
}

// Start runs a single-member cluster of the etcd binary (see Binary) and
// waits until it serves clients; it is stopped when t ends.
func Start(t testing.TB, cfg Config) *Member {
	t.Helper()
	bin, version, minor := Binary(t)
	dir := t.TempDir()
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		var m *Member
		m, err = start(bin, filepath.Join(dir, fmt.Sprintf("try-%d", attempt)), cfg)
		if err == nil {
			m.Version, m.Minor = version, minor
			t.Cleanup(func() {
				if err := m.stop(); err != nil {
					t.Errorf("stop etcd %s: %v", version, err)
				}
				if t.Failed() {
					t.Logf("etcd %s: tail of %s:\n%s", version, m.LogPath, tail(m.LogPath, 40))
				}
			})
			return m
		}
		// A port picked free may be taken before etcd binds it: try again
		// with fresh ones.
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("start etcd %s (%s): %v", version, bin, err)
	return nil
}

func start(bin, dir string, cfg Config) (*Member, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	client := fmt.Sprintf("https://127.0.0.1:%d", cport)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pport)
	logPath := filepath.Join(dir, "etcd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{
		"--name", "test", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test=" + peer, "--initial-cluster-state", "new",
		"--initial-cluster-token", filepath.Base(filepath.Dir(dir)),
		"--cert-file", cfg.CertFile, "--key-file", cfg.KeyFile, "--trusted-ca-file", cfg.CAFile,
		// As clusterstore/etcd's DefaultMaxTxnOps and DefaultMaxRequestBytes
		// (this package cannot import it: its own tests use this one).
		"--max-txn-ops", "16384", "--max-request-bytes", strconv.Itoa(32 << 20),
		"--logger", "zap", "--log-outputs", "stderr",
	}
	if cfg.ClientCertAuth {
		args = append(args, "--client-cert-auth")
	}
	cmd := exec.Command(bin, args...)
	// Nothing of the caller's ETCD_* environment (nor /etc/default/etcd,
	// which only the package's unit reads) reaches the member.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	// The member dies with the test binary, even one killed by a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &Member{Binary: bin, LogPath: logPath, endpoint: client, cmd: cmd, done: make(chan struct{})}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.done)
	}()
	if err := m.waitReady(cfg); err != nil {
		_ = m.stop()
		return nil, fmt.Errorf("%w; log %s:\n%s", err, logPath, tail(logPath, 20))
	}
	return m, nil
}

// waitReady polls /health over TLS, presenting the member's own
// certificate, until it answers or the process exits.
func (m *Member) waitReady(cfg Config) error {
	tc, err := pki.LoadClientTLS(cfg.CAFile, cfg.CertFile, cfg.KeyFile, "")
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-m.done:
			return fmt.Errorf("etcd exited before it was ready: %v", m.waitErr)
		default:
		}
		resp, err := hc.Get(m.endpoint + "/health")
		if err == nil {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(body.String(), `"health":"true"`) {
				return nil
			}
			err = fmt.Errorf("/health: %s %s", resp.Status, body)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("etcd not ready after %v: %v", readyTimeout, last)
}

// stop ends the member: SIGTERM, then SIGKILL after 10 s.
func (m *Member) stop() error {
	select {
	case <-m.done:
		return nil // exited already (start failed)
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	return errors.New("did not stop within 10 s of SIGTERM; killed")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// AuthChanges counts the changes to users, roles, permissions and
// authentication the member has applied so far, from its log: etcd 3.4
// has no auth revision to read (the AuthStatus call came with 3.5), and
// even its reads of users and roles go through raft, so neither its raft
// index nor its revision tells; but it logs each change at level info from
// auth/store.go ("added a user", "granted/updated a permission to a
// user", "enabled authentication", ...), and before it answers the
// request.
func (m *Member) AuthChanges() (int, error) {
	f, err := os.Open(m.LogPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var e struct{ Level, Caller string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Level == "info" && strings.HasPrefix(e.Caller, "auth/store.go:") {
			n++
		}
	}
	return n, sc.Err()
}
