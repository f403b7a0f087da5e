package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/drivers/libvirt"
	"github.com/bulwarkhq/bulwark/fencing"
	"github.com/bulwarkhq/bulwark/fencing/bmcemu"
)

// TestMain runs bulwarkd's main instead of the tests when asked to: the
// tests start this test binary as `bulwarkd ARGS...` (see bulwarkd below).
func TestMain(m *testing.M) {
	if os.Getenv("BULWARKD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// bulwarkd starts this binary as bulwarkd with args and an environment
// holding only env (plus PATH), and waits for it.
func bulwarkd(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := command(ctx, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("bulwarkd %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append([]string{"BULWARKD_TEST_MAIN=1", "PATH=" + os.Getenv("PATH")}, env...)
	return cmd
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheckCommand(t *testing.T) {
	pk := filepath.Join("..", "..", "packaging")
	defaults := []string{filepath.Join(pk, "etc/bulwark/server.yaml"), filepath.Join(pk, "etc/bulwark/agent.yaml")}
	examples, _ := filepath.Glob(filepath.Join(pk, "examples/production/*.yaml"))
	if len(examples) != 4 {
		t.Fatalf("examples: %v", examples)
	}
	out, errs, code := bulwarkd(t, nil, append([]string{"config", "check"}, defaults...)...)
	if code != 0 || out != defaults[0]+": ok (server config)\n"+defaults[1]+": ok (agent config)\n" {
		t.Errorf("defaults: exit %d\n%s%s", code, out, errs)
	}
	// The examples name TLS and password files that do not exist here.
	out, errs, code = bulwarkd(t, nil, append([]string{"config", "check", "--skip-files"}, examples...)...)
	if code != 0 || strings.Count(out, ": ok (agent config)") != 3 || strings.Count(out, ": ok (server config)") != 1 ||
		strings.Contains(out, "warning:") || strings.Contains(out, "bmc") {
		t.Errorf("examples: exit %d\n%s%s", code, out, errs)
	}
	_, errs, code = bulwarkd(t, nil, "config", "check", examples[0])
	if code != 1 || !strings.Contains(errs, examples[0]+":") || !strings.Contains(errs, "does not exist") {
		t.Errorf("examples with file checks: exit %d\n%s", code, errs)
	}

	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "kind: agent\nname: Bad_Name\ncpus: lots\nlibvirt:\n  ur1: qemu:///system\n", 0o644)
	noKind := writeFile(t, dir, "nokind.yaml", "listen: 0.0.0.0:7370\n", 0o644)
	good := writeFile(t, dir, "good.yaml", "kind: server\nlisten: 0.0.0.0:7370\n", 0o644)
	for _, c := range []struct {
		name string
		args []string
		code int
		out  string
		errs []string
	}{
		{"bad", []string{bad}, 1, "", []string{
			bad + `:2:7: name: host name "Bad_Name" is not a DNS label`,
			bad + `:3:7: cpus: "lots" is not a whole number`,
			bad + `:5:3: unknown key "libvirt.ur1" (did you mean "libvirt.uri"?)`,
			"error: config check: 1 of 1 files have problems"}},
		{"good and bad", []string{good, bad}, 1, good + ": ok (server config)\n", []string{"1 of 2 files have problems"}},
		{"no kind", []string{noKind}, 1, "", []string{"cannot tell a server config from an agent config"}},
		{"--kind", []string{"--kind", "server", noKind}, 0, noKind + ": ok (server config)\n", nil},
		{"--kind disagrees", []string{"--kind", "agent", good}, 1, "", []string{
			good + ":1:7: kind: this is a server config, but an agent config is being read",
			good + `:2:1: unknown key "listen": that is a server setting; this is an agent config`}},
		{"--kind invalid", []string{"--kind", "both", good}, 1, "", []string{`--kind: kind "both": use server or agent`}},
		{"missing", []string{filepath.Join(dir, "none.yaml")}, 1, "", []string{filepath.Join(dir, "none.yaml") + ": config file does not exist"}},
		{"no file", nil, 1, "", []string{"name at least one file"}},
	} {
		out, errs, code := bulwarkd(t, nil, append([]string{"config", "check"}, c.args...)...)
		if code != c.code || out != c.out {
			t.Errorf("%s: exit %d (want %d), stdout %q (want %q), stderr:\n%s", c.name, code, c.code, out, c.out, errs)
		}
		for _, w := range c.errs {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, errs)
			}
		}
	}
}

func TestDaemonStopsOnBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "server.yaml", "kind: server\nlisten: 7370\nsesion_ttl: 5s\n", 0o644)
	agentAsServer := writeFile(t, dir, "agent.yaml", "kind: agent\n", 0o644)
	missing := filepath.Join(dir, "missing.yaml")
	openPW := writeFile(t, dir, "open.password", "pw\n", 0o640)
	fence := func(name, device string) string {
		return writeFile(t, dir, name, "kind: server\nfencing:\n  hosts:\n    host-1:\n      - type: redfish\n"+device, 0o644)
	}
	fenceOpen := fence("fence-open.yaml", "        url: https://127.0.0.1:1\n        username: u\n        password_file: "+openPW+"\n")
	fenceEnv := fence("fence-env.yaml", "        url: https://127.0.0.1:1\n        username: u\n        password_env: BULWARK_TEST_BMC_PW\n")
	fenceHTTP := fence("fence-http.yaml", "        url: http://127.0.0.1:1\n        username: u\n        password_env: BULWARK_TEST_BMC_PW\n")
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"missing --config", nil, []string{"server", "--config", missing},
			[]string{"error: bulwarkd server: invalid configuration:", "  " + missing + ": config file does not exist"}},
		{"bad file", nil, []string{"server", "--config", bad}, []string{
			"  " + bad + `:2:9: listen: "7370" is not host:port`,
			"  " + bad + `:3:1: unknown key "sesion_ttl" (did you mean "session_ttl"?)`}},
		{"wrong kind", nil, []string{"server", "--config", agentAsServer},
			[]string{agentAsServer + ":1:7: kind: this is an agent config, but a server config is being read"}},
		{"bad env", []string{"BULWARK_SESSION_TTL=forever", "BULWARK_ETCD=http://x"}, []string{"agent", "--config", os.DevNull}, []string{
			`  $BULWARK_SESSION_TTL (session_ttl): "forever" is not a duration`,
			`  $BULWARK_ETCD (etcd.endpoints): endpoint "http://x" has no port`}},
		{"bad flags", nil, []string{"agent", "--config", os.DevNull, "--cpus", "-1", "--label", "rack"}, []string{
			"  --cpus: -1 is out of range: use 0 to 4096",
			`  --label: label "rack": expected key=value`}},
		{"settings that need each other", nil, []string{"agent", "--config", os.DevNull, "--bmc-insecure"},
			[]string{"  --bmc-insecure: bmc.insecure is set but bmc.url is not"}},
		{"bad app-wide --log-level", nil, []string{"--log-level", "loud", "server", "--config", os.DevNull},
			[]string{`  --log-level: log level "loud": use debug, info, warn or error`}},
		{"fence password file readable by its group", nil, []string{"server", "--config", fenceOpen}, []string{
			"  " + fenceOpen + ":8:24: fencing.hosts.host-1[1].password_file: " + openPW + " has mode 0640: it holds a BMC password"}},
		{"fence password variable not set", nil, []string{"server", "--config", fenceEnv}, []string{
			"  " + fenceEnv + ":8:23: fencing.hosts.host-1[1].password_env: $BULWARK_TEST_BMC_PW is empty or not set in the server's environment"}},
		{"fence device over http", nil, []string{"server", "--config", fenceHTTP}, []string{
			"  " + fenceHTTP + `:6:14: fencing.hosts.host-1[1].url: "http://127.0.0.1:1": the scheme must be https`}},
		{"bad fence timing", []string{"BULWARK_FENCE_DEVICE_TIMEOUT=0s"}, []string{"server", "--config", os.DevNull, "--fence-check-interval", "forever"}, []string{
			"  $BULWARK_FENCE_DEVICE_TIMEOUT (fencing.device_timeout): 0s is out of range: use 1s to 10m",
			`  --fence-check-interval: "forever" is not a duration`}},
	} {
		_, errs, code := bulwarkd(t, c.env, c.args...)
		if code != exitConfig {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", c.name, code, exitConfig, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w+"\n") && !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, errs)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	out, errs, code := bulwarkd(t, nil, "--version")
	if code != 0 || out != "bulwarkd version dev (commit unknown, built unknown)\n" {
		t.Errorf("--version: exit %d, %q %q", code, out, errs)
	}
}

// TestReadiness starts a server and an agent as systemd would start a
// Type=notify service and waits for READY=1, then stops them and waits for
// STOPPING=1. It also checks precedence through the real command line: the
// file says log_level error, the environment warn, the flag debug, and the
// debug line about notifying systemd must appear.
func TestReadiness(t *testing.T) {
	dir := t.TempDir()
	etcd, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{Dir: filepath.Join(dir, "etcd")})
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	defer etcd.Close()
	ep := etcd.Endpoints()[0]
	hostXML := filepath.Join(dir, "host.xml")
	if err := libvirt.WriteTestHostXML(hostXML, 4, 8<<30); err != nil {
		t.Fatal(err)
	}
	serverConf := writeFile(t, dir, "server.yaml", "kind: server\nname: s1\nlog_level: error\nlisten: 256.0.0.2:7370\netcd:\n  endpoints: [http://127.0.0.1:1]\n", 0o644)
	agentConf := writeFile(t, dir, "agent.yaml", "kind: agent\nname: h1\nlog_level: error\nlibvirt:\n  uri: test://"+hostXML+"\nlabels: {rack: r1}\n", 0o644)
	for _, c := range []struct {
		name string
		args []string
	}{
		// listen: the flag beats the environment and the file; etcd: the environment beats the file.
		{"server", []string{"server", "--config", serverConf, "--log-level", "debug", "--listen", "127.0.0.1:0"}},
		{"agent", []string{"--log-level", "debug", "agent", "--config", agentConf, "--etcd", ep}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "notify")
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := command(ctx, []string{"NOTIFY_SOCKET=" + sock, "BULWARK_LOG_LEVEL=warn", "BULWARK_LISTEN=256.0.0.1:1", "BULWARK_ETCD=" + ep}, c.args...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			read := func(want string) {
				t.Helper()
				_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 256)
				n, err := conn.Read(buf)
				if err != nil || string(buf[:n]) != want {
					t.Fatalf("notify socket: %q, %v; want %q; stderr:\n%s", buf[:n], err, want, errb.String())
				}
			}
			read("READY=1")
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			read("STOPPING=1")
			if err := cmd.Wait(); err != nil {
				t.Errorf("exit after SIGTERM: %v; stderr:\n%s", err, errb.String())
			}
			if !strings.Contains(errb.String(), `level=DEBUG msg="notified systemd" state="READY=1"`) {
				t.Errorf("no debug line: the flag's log level did not win over the environment and the file:\n%s", errb.String())
			}
		})
	}
}

func TestSdNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := sdNotify("READY=1"); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v %v", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "none"))
	if sent, err := sdNotify("READY=1"); sent || err == nil {
		t.Errorf("with a socket that does not exist: %v %v", sent, err)
	}
}

// selfSignedPair writes a self-signed certificate (also a CA) and its key.
func selfSignedPair(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bulwark"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConfigCheckExampleServer checks the production example server.yaml
// with its files: every path under /etc/bulwark/ is moved into a temporary
// directory that holds what the example's comments and docs/install.md
// tell an operator to create there.
func TestConfigCheckExampleServer(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "packaging", "examples", "production", "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"tls", "bmc"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	selfSignedPair(t, filepath.Join(dir, "tls", "server-etcd.pem"), filepath.Join(dir, "tls", "server-etcd-key.pem"))
	selfSignedPair(t, filepath.Join(dir, "tls", "server.pem"), filepath.Join(dir, "tls", "server-key.pem"))
	selfSignedPair(t, filepath.Join(dir, "tls", "etcd-ca.pem"), filepath.Join(dir, "tls", "etcd-ca-key.pem"))
	selfSignedPair(t, filepath.Join(dir, "bmc", "ca.pem"), filepath.Join(dir, "bmc", "ca-key.pem"))
	for _, h := range []string{"host-1", "host-2", "host-3"} {
		writeFile(t, filepath.Join(dir, "bmc"), h+".password", "secret-of-"+h+"\n", 0o600)
	}
	conf := writeFile(t, dir, "server.yaml", strings.ReplaceAll(string(example), "/etc/bulwark/", dir+"/"), 0o644)
	out, errs, code := bulwarkd(t, nil, "config", "check", conf)
	if code != 0 || !strings.HasPrefix(out, conf+": ok (server config)\n") || strings.Contains(out, "warning:") || errs != "" {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	// A password file that its group may read fails the check, naming
	// the line of the file that names it.
	if err := os.Chmod(filepath.Join(dir, "bmc", "host-2.password"), 0o640); err != nil {
		t.Fatal(err)
	}
	out, errs, code = bulwarkd(t, nil, "config", "check", conf)
	line := 0
	for i, l := range strings.Split(string(example), "\n") {
		if strings.Contains(l, "password_file: /etc/bulwark/bmc/host-2.password") {
			line = i + 1
		}
	}
	want := fmt.Sprintf("%s:%d:24: fencing.hosts.host-2[1].password_file: %s has mode 0640", conf, line, filepath.Join(dir, "bmc", "host-2.password"))
	if code != 1 || !strings.Contains(errs, want) {
		t.Errorf("exit %d, want 1 and %q:\n%s%s", code, want, out, errs)
	}
}

func TestConfigCheckWarnings(t *testing.T) {
	dir := t.TempDir()
	agent := writeFile(t, dir, "agent.yaml", "kind: agent\nbmc:\n  url: https://10.0.1.11\n  username: u\n  password_file: /nonexistent/pw\n", 0o644)
	srv := writeFile(t, dir, "server.yaml", `kind: server
fencing:
  hosts:
    host-1:
      - type: redfish
        url: https://10.0.1.11
        username: fence
        password_env: BULWARK_TEST_UNSET_PW
        insecure: true
`, 0o644)
	out, errs, code := bulwarkd(t, nil, "config", "check", agent, srv)
	for _, w := range []string{
		agent + ": ok (agent config)\n",
		agent + ": warning: bmc is deprecated and ignored: fence devices are configured on the servers, under fencing.hosts in server.yaml",
		srv + ": ok (server config)\n",
		srv + ": warning: line 9: fencing.hosts.host-1[1].insecure: the BMC's TLS certificate is not verified",
		srv + ": warning: line 8: fencing.hosts.host-1[1].password_env: $BULWARK_TEST_UNSET_PW is not set in this environment",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
	if code != 0 || errs != "" {
		t.Errorf("exit %d: %s", code, errs)
	}
	// With the variable set there is nothing to say about it; with
	// --skip-files it is not looked at.
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{[]string{"BULWARK_TEST_UNSET_PW=x"}, []string{srv}},
		{nil, []string{"--skip-files", srv}},
	} {
		out, _, _ = bulwarkd(t, c.env, append([]string{"config", "check"}, c.args...)...)
		if strings.Contains(out, "password_env") || !strings.Contains(out, "insecure") {
			t.Errorf("%v %v:\n%s", c.env, c.args, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerFencingFromConfig runs `bulwarkd server --config F` whose
// fencing section names two emulated Redfish BMCs on 127.0.0.1: host-1's
// with the right password (from a 0600 file) and the emulator's
// certificate as CA file, host-2's with a wrong one (from the server's
// environment). The leader's fence health probe must find host-1 ok and
// host-2 unfenceable, and neither password may appear in the log.
func TestServerFencingFromConfig(t *testing.T) {
	dir := t.TempDir()
	etcd, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{Dir: filepath.Join(dir, "etcd")})
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	defer etcd.Close()
	ep := etcd.Endpoints()[0]

	const (
		pw1      = "host-1-secret-pw"
		pw2      = "host-2-secret-pw"
		pw2Wrong = "host-2-wrong-pw"
	)
	bmc := func(name, password string) *bmcemu.BMC {
		b, err := bmcemu.New(bmcemu.Config{Username: "fence", Password: password, CertFile: filepath.Join(dir, name+"-ca.pem")})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	bmc1, bmc2 := bmc("host-1", pw1), bmc("host-2", pw2)
	pwFile := writeFile(t, dir, "host-1.password", pw1+"\n", 0o600)
	conf := writeFile(t, dir, "server.yaml", fmt.Sprintf(`kind: server
name: s1
fencing:
  check_interval: 1s
  hosts:
    host-1:
      - name: host-1-bmc
        type: redfish
        url: %s
        username: fence
        password_file: %s
        ca_file: %s
    host-2:
      - type: redfish
        url: %s
        username: fence
        password_env: BULWARK_TEST_HOST2_PW
        ca_file: %s
        auth: basic
`, bmc1.URL(), pwFile, filepath.Join(dir, "host-1-ca.pem"), bmc2.URL(), filepath.Join(dir, "host-2-ca.pem")), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := command(ctx, []string{"BULWARK_TEST_HOST2_PW=" + pw2Wrong, "BULWARK_FENCE_DEVICE_TIMEOUT=5s"},
		"server", "--config", conf, "--listen", "127.0.0.1:0", "--etcd", ep, "--log-level", "debug")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	// The API's address, from the log.
	listening := regexp.MustCompile(`msg="API listening" .*addr=(\S+)`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; time.Sleep(50 * time.Millisecond) {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start listening:\n%s", logs.String())
		}
	}

	// Register the two hosts as their agents would.
	store, err := etcdstore.Dial(ctx, []string{ep}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var ops []clusterstore.Op
	for _, h := range []string{"host-1", "host-2"} {
		ops = append(ops, clusterstore.Put(clusterstore.NodeKey(h), clusterstore.Encode(api.Node{Schema: api.SchemaVersion, Name: h,
			CPUs: 4, Memory: 8 * api.GiB, LeaseTTL: api.Duration(3 * time.Second), SelfFenceAfter: api.Duration(1800 * time.Millisecond),
			RegisteredAt: time.Now().UTC()})))
	}
	if _, _, err := store.Txn(ctx, nil, ops); err != nil {
		t.Fatal(err)
	}
	viewer, _, err := clusterstore.CreateToken(ctx, store, "test-viewer", api.RoleViewer, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// Poll the nodes until the probe has judged both (bounded).
	fencingOf := map[string]string{}
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fence health not reported in time: %v\nlog:\n%s", fencingOf, logs.String())
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/nodes", nil)
		req.Header.Set("Authorization", "Bearer "+viewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var nodes []api.NodeView
		err = json.NewDecoder(resp.Body).Decode(&nodes)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for _, n := range nodes {
			fencingOf[n.Name] = n.Fencing
		}
		if fencingOf["host-1"] == "ok" && strings.HasPrefix(fencingOf["host-2"], "unfenceable: ") {
			break
		}
	}
	if f := fencingOf["host-2"]; !strings.Contains(f, "host-2-level1") || !strings.Contains(f, "authentication failed") {
		t.Errorf("host-2: %q, want its default device name and an authentication failure", f)
	}
	// The probe logged in and changed nothing.
	if st := bmc1.Stats(); st.Logins == 0 || len(st.Resets) != 0 || bmc1.Power() != fencing.On {
		t.Errorf("host-1's BMC: %+v, power %s", st, bmc1.Power())
	}
	if st := bmc2.Stats(); st.FailedLogins == 0 || len(st.Resets) != 0 {
		t.Errorf("host-2's BMC: %+v", st)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	log := logs.String()
	for _, w := range []string{`msg="fencing configured" hosts=host-1,host-2 devices=2 device_timeout=5s check_interval=1s`,
		`msg="fence device" host=host-1 level=1 device=host-1-bmc`, `msg="host is unfenceable" server=s1 host=host-2`} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
	for _, pw := range []string{pw1, pw2, pw2Wrong} {
		if strings.Contains(log, pw) {
			t.Errorf("the log shows a password (%s):\n%s", pw, log)
		}
	}
}
