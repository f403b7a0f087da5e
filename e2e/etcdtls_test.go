package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/clusterstore"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/pki"
)

// TestDaemonsOverEtcdTLS runs `bulwarkd agent` and `bulwarkd server` as
// docs/security.md sets them up: etcd (embedded here, in the test process)
// serves clients over TLS and requires client certificates from the
// cluster CA; both daemons of host h1 present h1's agent certificate, given
// by the --etcd-ca-file, --etcd-cert-file and --etcd-key-file flags. The
// agent must register and the server must campaign, which the test reads
// back from etcd over TLS. An agent with the CA but no certificate must
// stop, saying that etcd wants one.
func TestDaemonsOverEtcdTLS(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "pki")
	if _, _, err := pki.InitCA(caDir, false); err != nil {
		t.Fatal(err)
	}
	issue := func(name, kind, out string, hosts ...string) (string, string) {
		cert, key, err := pki.Issue(pki.IssueRequest{CADir: caDir, Name: name, Kind: kind, Hosts: hosts, OutDir: filepath.Join(caDir, out)})
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	caFile := filepath.Join(caDir, pki.CACertFile)
	etcdCert, etcdKey := issue("etcd-1", pki.KindEtcd, "etcd", "127.0.0.1", "localhost")
	agentCert, agentKey := issue("h1", pki.KindAgent, "agent", "h1", "127.0.0.1")

	member, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{
		Dir:       filepath.Join(dir, "etcd"),
		Name:      "e2e-tls",
		ClientURL: fmt.Sprintf("https://127.0.0.1:%d", freePort(t)),
		// PeerURL left empty: picked free, retried if taken meanwhile.
		ClientCertFile: etcdCert, ClientKeyFile: etcdKey,
		ClientCAFile: caFile, ClientCertAuth: true,
	})
	if err != nil {
		t.Fatalf("embedded etcd over TLS: %v", err)
	}
	t.Cleanup(member.Close)
	endpoint := member.Endpoints()[0]
	tlsFlags := []string{"--etcd", endpoint, "--etcd-ca-file", caFile, "--etcd-cert-file", agentCert, "--etcd-key-file", agentKey}

	hostXML := filepath.Join(dir, "host.xml")
	writeTestHost(t, hostXML)
	start := time.Now()
	agent := startProc(t, "bulwarkd", append([]string{"agent", "--config", os.DevNull, "--name", "h1", "--libvirt-uri", "test://" + hostXML,
		"--session-ttl", "3s"}, tlsFlags...)...)
	server := startProc(t, "bulwarkd", append([]string{"server", "--config", os.DevNull, "--name", "s1",
		"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, tlsFlags...)...)

	cfg, err := pki.LoadClientTLS(caFile, agentCert, agentKey, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := etcdstore.DialTLS(ctx, []string{endpoint}, 5*time.Second, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	exists := func(key string, prefix bool) bool {
		if prefix {
			kvs, _, err := store.List(ctx, key, 0)
			return err == nil && len(kvs) > 0
		}
		_, ok, _, err := store.Get(ctx, key)
		return err == nil && ok
	}
	eventually(t, "h1 registered and heartbeating over TLS", 20*time.Second, func() bool {
		if agent.exited() {
			t.Fatalf("agent exited:\n%s", agent.out.String())
		}
		return exists(clusterstore.NodeKey("h1"), false) && exists(clusterstore.HeartbeatKey("h1"), false)
	})
	t.Logf("agent registered %v after start", time.Since(start).Round(time.Millisecond))
	eventually(t, "the server campaigning over TLS", 20*time.Second, func() bool {
		if server.exited() {
			t.Fatalf("server exited:\n%s", server.out.String())
		}
		return exists(clusterstore.ElectionPrefix, true)
	})

	// Without a client certificate etcd refuses the agent, and the agent
	// says so rather than only that it timed out.
	lone := startProc(t, "bulwarkd", "agent", "--config", os.DevNull, "--name", "h2", "--libvirt-uri", "test://"+hostXML,
		"--etcd", endpoint, "--etcd-ca-file", caFile, "--etcd-dial-timeout", "1s")
	eventually(t, "the agent without a certificate to stop", 20*time.Second, lone.exited)
	out := strings.TrimSpace(lone.out.String())
	if !strings.Contains(out, "etcd requires a client certificate and none was given") {
		t.Errorf("agent without a certificate:\n%s", out)
	}
	t.Logf("agent without a certificate: %s", out[strings.LastIndex(out, "\n")+1:])
	if exists(clusterstore.NodeKey("h2"), false) {
		t.Error("h2 registered without a certificate")
	}
}
