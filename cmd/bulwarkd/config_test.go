package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/drivers/libvirt"
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
		!strings.Contains(out, "warning: etcd TLS files are checked, but this version of bulwarkd cannot use them yet") ||
		!strings.Contains(out, "warning: bmc is checked but not used yet") {
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
	ca := selfSignedCA(t, dir)
	tls := writeFile(t, dir, "tls.yaml", "kind: server\netcd:\n  endpoints: [https://127.0.0.1:1]\n  ca_file: "+ca+"\n", 0o644)
	missing := filepath.Join(dir, "missing.yaml")
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
		{"missing BMC password file", nil, []string{"agent", "--config", os.DevNull, "--bmc-url", "https://bmc", "--bmc-username", "u",
			"--bmc-password-file", filepath.Join(dir, "pw")}, []string{"  --bmc-password-file: " + filepath.Join(dir, "pw") + " does not exist"}},
		{"etcd TLS not usable yet", nil, []string{"server", "--config", tls},
			[]string{"  " + tls + ":4:12: etcd.ca_file: this version of bulwarkd checks the etcd TLS files but cannot use them yet"}},
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

func selfSignedCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
}
