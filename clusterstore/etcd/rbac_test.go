package etcd

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	etcdversion "go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/etcd/etcdtest"
	"github.com/bulwarkhq/bulwark/pki"
)

// etcdBackend starts an etcd member serving clients over TLS with the
// certificates of the CA in caDir.
type etcdBackend struct {
	name string
	// start runs a member with a new etcd certificate called name;
	// clientCertAuth: --client-cert-auth.
	start func(t *testing.T, caDir, name string, clientCertAuth bool) testMember
}

// testMember is a running member.
type testMember struct {
	eps []string
	// version and minor are etcd's: "3.6.16", 6.
	version string
	minor   int
	// authChanges counts the changes to users, roles and permissions
	// etcd has applied, where it has no auth revision to tell (3.4).
	authChanges func() (int, error)
}

// etcdBackends are the etcd releases the RBAC tests run against: go.mod's,
// embedded, and the binary of Debian 12's etcd-server (3.4.23), which
// docs/install.md tells production users to install (etcdtest skips
// loudly without it, or fails under BULWARK_REQUIRE_REAL=1).
var etcdBackends = []etcdBackend{
	{"embedded", func(t *testing.T, caDir, name string, certAuth bool) testMember {
		cert, key := memberCert(t, caDir, name)
		m, err := StartEmbedded(EmbeddedConfig{Dir: filepath.Join(t.TempDir(), "etcd"), ClientCertFile: cert, ClientKeyFile: key,
			ClientCAFile: filepath.Join(caDir, pki.CACertFile), ClientCertAuth: certAuth})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		minor, err := strconv.Atoi(strings.Split(etcdversion.Version, ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		return testMember{eps: m.Endpoints(), version: etcdversion.Version, minor: minor}
	}},
	{"binary", func(t *testing.T, caDir, name string, certAuth bool) testMember {
		cert, key := memberCert(t, caDir, name)
		m := etcdtest.Start(t, etcdtest.Config{CertFile: cert, KeyFile: key, CAFile: filepath.Join(caDir, pki.CACertFile), ClientCertAuth: certAuth})
		t.Logf("etcd %s (%s)", m.Version, m.Binary)
		return testMember{eps: m.Endpoints(), version: m.Version, minor: m.Minor, authChanges: m.AuthChanges}
	}},
}

// memberCert issues the certificate of a member called name.
func memberCert(t *testing.T, caDir, name string) (cert, key string) {
	t.Helper()
	cert, key, err := pki.Issue(pki.IssueRequest{CADir: caDir, Name: name, Kind: pki.KindEtcd, Hosts: []string{"127.0.0.1", "localhost"},
		OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// rbacCluster is a TLS member requiring client certificates, with a
// certificate for a server user and for a few hosts.
type rbacCluster struct {
	testMember
	t      *testing.T
	caDir  string
	caFile string
}

func newRBACCluster(t *testing.T, b etcdBackend) *rbacCluster {
	t.Helper()
	return newRBACClusterWith(t, b, true)
}

// newRBACClusterWith: a member with or without --client-cert-auth.
func newRBACClusterWith(t *testing.T, b etcdBackend, clientCertAuth bool) *rbacCluster {
	t.Helper()
	caDir := filepath.Join(t.TempDir(), "pki")
	if _, _, err := pki.InitCA(caDir, false); err != nil {
		t.Fatal(err)
	}
	m := b.start(t, caDir, "etcd-1", clientCertAuth)
	return &rbacCluster{testMember: m, t: t, caDir: caDir, caFile: filepath.Join(caDir, pki.CACertFile)}
}

// dial connects with the certificate named name (issued on first use; a
// client certificate for server users, an agent one for hosts).
func (c *rbacCluster) dial(name string) (clusterstore.Store, error) {
	c.t.Helper()
	cert, key := filepath.Join(c.caDir, name+".pem"), filepath.Join(c.caDir, name+"-key.pem")
	if _, err := pki.ReadCertificate(cert); err != nil {
		req := pki.IssueRequest{CADir: c.caDir, Name: name, Kind: pki.KindAgent, Hosts: []string{name}}
		if strings.HasPrefix(name, "server") {
			req.Kind, req.Hosts = pki.KindClient, nil
		}
		if _, _, err := pki.Issue(req); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return DialTLS(ctx, c.eps, 5*time.Second, clientTLS(c.t, c.caFile, cert, key))
}

func (c *rbacCluster) mustDial(name string) (clusterstore.Store, *clientv3.Client) {
	c.t.Helper()
	s, err := c.dial(name)
	if err != nil {
		c.t.Fatalf("dial as %s: %v", name, err)
	}
	c.t.Cleanup(func() { s.Close() })
	cli, err := Client(s)
	if err != nil {
		c.t.Fatal(err)
	}
	return s, cli
}

// authWrites returns a number that grows with every change to etcd's
// users, roles and permissions: the auth revision where etcd tells it
// (3.5 and later), else what the member's log counts (authChanges).
func (c *rbacCluster) authWrites(t *testing.T, cli *clientv3.Client) uint64 {
	t.Helper()
	st, err := cli.AuthStatus(context.Background())
	if err == nil {
		return st.AuthRevision
	}
	if !isUnimplemented(err) || c.authChanges == nil {
		t.Fatal(err)
	}
	n, err := c.authChanges()
	if err != nil {
		t.Fatal(err)
	}
	return uint64(n)
}

// TestEtcdRBAC enables etcd's authentication on a real member that takes
// the user from the client certificate, and checks that a host's
// certificate can do what its agent does and nothing that is another
// host's or the servers'; that the server user can do everything; that a
// certificate without a user gets nothing; and that EnableAuth, AddHost
// and RemoveHost are idempotent, refuse bad input without changing
// anything, and repair a role that was widened by hand.
func TestEtcdRBAC(t *testing.T) {
	for _, b := range etcdBackends {
		t.Run(b.name, func(t *testing.T) { testEtcdRBAC(t, b) })
	}
}

func testEtcdRBAC(t *testing.T, b etcdBackend) {
	c := newRBACCluster(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, srvCli := c.mustDial("server-1")

	// Before: what the servers write, so there is something to read and
	// to refuse overwriting.
	alloc := clusterstore.AllocationKey("web")
	for _, k := range []string{alloc, clusterstore.WorkloadKey("web"), clusterstore.NodeKey("host-2"), clusterstore.HeartbeatKey("host-2"),
		clusterstore.StatusKey("host-2", "x"), clusterstore.AgentTokenKey("host-2"), "/outside"} {
		if _, _, err := srv.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(k, []byte("server"))}); err != nil {
			t.Fatal(err)
		}
	}
	akv, _, _, err := srv.Get(ctx, alloc)
	if err != nil {
		t.Fatal(err)
	}
	epoch := akv.CreateRevision

	if err := EnableAuth(ctx, srvCli, []string{"server-1"}, []string{"host-1", "host-2", "host-1"}); err != nil {
		t.Fatal(err)
	}
	st, err := AuthStatus(ctx, srvCli)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.Unknown != "" {
		t.Fatalf("auth is not enabled: %+v", st)
	}
	// etcd 3.4 has no AuthStatus call: the state is probed, without a
	// revision.
	if probed := c.minor < 5; st.Probed != probed || (st.Revision == 0) != probed || (probed && st.EtcdVersion != c.version) {
		t.Errorf("etcd %s: probed %v, revision %d, version %q", c.version, st.Probed, st.Revision, st.EtcdVersion)
	}
	wantUsers := []User{{"host-1", []string{"bulwark-agent-host-1"}}, {"host-2", []string{"bulwark-agent-host-2"}},
		{"root", []string{"root"}}, {"server-1", []string{"root"}}}
	if !slices.EqualFunc(st.Users, wantUsers, func(a, b User) bool { return a.Name == b.Name && slices.Equal(a.Roles, b.Roles) }) {
		t.Errorf("users %+v, want %+v", st.Users, wantUsers)
	}
	for _, r := range st.Roles {
		want := AgentPermissions("host-1")
		slices.SortFunc(want, func(a, b Permission) int { return strings.Compare(a.Key, b.Key) })
		if r.Name == AgentRole("host-1") && !slices.Equal(r.Perms, want) {
			t.Errorf("role %s: %v, want %v", r.Name, r.Perms, AgentPermissions("host-1"))
		}
	}

	if c.authWrites(t, srvCli) == 0 {
		t.Errorf("etcd %s: enabling counted no change to users and roles", c.version)
	}

	h1, h1Cli := c.mustDial("host-1")

	t.Run("host-1 does what its agent does", func(t *testing.T) {
		put := func(k string) {
			t.Helper()
			if _, _, err := h1.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(k, []byte("host-1"))}); err != nil {
				t.Errorf("put %s: %v", k, err)
			}
			if kv, ok, _, err := h1.Get(ctx, k); err != nil || !ok || string(kv.Value) != "host-1" {
				t.Errorf("get %s: %q %v %v", k, kv.Value, ok, err)
			}
		}
		for _, k := range []string{clusterstore.NodeKey("host-1"), clusterstore.AgentTokenKey("host-1"), clusterstore.HeartbeatKey("host-1"),
			clusterstore.StatusKey("host-1", "x"), clusterstore.LockKey("v"), clusterstore.VIPClaimKey("10.0.0.5")} {
			put(k)
		}
		for _, p := range []string{clusterstore.AllocationsPrefix, clusterstore.WorkloadsPrefix, clusterstore.VolumesPrefix, clusterstore.VIPsPrefix,
			clusterstore.LocksPrefix, clusterstore.VIPClaimsPrefix} {
			if _, _, err := h1.List(ctx, p, 0); err != nil {
				t.Errorf("list %s: %v", p, err)
			}
		}
		for _, k := range []string{clusterstore.FencingKey("host-1"), clusterstore.Prefix} {
			if _, _, _, err := h1.Get(ctx, k); err != nil {
				t.Errorf("get %s: %v", k, err)
			}
		}
		// Not what it does not need: the API's token hashes, other agents'
		// API tokens, other hosts' records, the events, the settings.
		for _, p := range []string{clusterstore.TokensPrefix, clusterstore.AgentTokensPrefix, clusterstore.FencingPrefix, clusterstore.NodesPrefix,
			clusterstore.HeartbeatsPrefix, clusterstore.EventsPrefix, clusterstore.Prefix} {
			if _, _, err := h1.List(ctx, p, 0); !IsPermissionDenied(err) {
				t.Errorf("list %s: %v, want permission denied", p, err)
			}
		}
		for _, k := range []string{clusterstore.AgentTokenKey("host-2"), clusterstore.SettingsKey, clusterstore.TokenKey("x")} {
			if _, _, _, err := h1.Get(ctx, k); !IsPermissionDenied(err) {
				t.Errorf("get %s: %v, want permission denied", k, err)
			}
		}
		// The agent's session: grant, heartbeat guarded by the fence
		// record, status bound to the lease, keepalive, revoke.
		sess, err := clusterstore.NewSession(ctx, h1, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ok, _, err := h1.Txn(ctx, []clusterstore.Cond{clusterstore.Missing(clusterstore.FencingKey("host-1"))},
			[]clusterstore.Op{clusterstore.PutWithLease(clusterstore.HeartbeatKey("host-1"), []byte("hb"), sess.Lease()),
				clusterstore.PutWithLease(clusterstore.StatusKey("host-1", "web"), []byte("st"), sess.Lease())})
		if err != nil || !ok {
			t.Fatalf("heartbeat: %v %v", ok, err)
		}
		if _, err := h1.KeepAliveOnce(ctx, sess.Lease()); err != nil {
			t.Errorf("keepalive: %v", err)
		}
		// Watches of allocations and of its fence record; a change by the
		// server arrives.
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		wch := h1.Watch(wctx, clusterstore.AllocationsPrefix, 0)
		fch := h1.Watch(wctx, clusterstore.FencingKey("host-1"), 0)
		if _, _, err := srv.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(clusterstore.AllocationKey("other"), []byte("x"))}); err != nil {
			t.Fatal(err)
		}
		if resp := <-wch; resp.Err != nil || len(resp.Events) != 1 {
			t.Errorf("watch allocations: %+v", resp)
		}
		if _, _, err := srv.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(clusterstore.FencingKey("host-1"), []byte("f"))}); err != nil {
			t.Fatal(err)
		}
		if resp := <-fch; resp.Err != nil || len(resp.Events) != 1 {
			t.Errorf("watch fence record: %+v", resp)
		}
		if _, _, err := srv.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.FencingKey("host-1"))}); err != nil {
			t.Fatal(err)
		}
		// A claim for a volume, guarded by the allocation at its epoch.
		claim := api.Claim{Resource: "volume data", Workload: "web", Host: "host-1", Epoch: epoch}
		if _, err := clusterstore.AcquireClaim(ctx, h1, clusterstore.LockKey("data"), claim, time.Now()); err != nil {
			t.Errorf("acquire claim: %v", err)
		}
		if err := clusterstore.ReleaseClaim(ctx, h1, clusterstore.LockKey("data"), claim); err != nil {
			t.Errorf("release claim: %v", err)
		}
		if _, _, err := h1.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.StatusKey("host-1", "x"))}); err != nil {
			t.Errorf("delete own status: %v", err)
		}
		if err := sess.Close(); err != nil {
			t.Errorf("revoke the session: %v", err)
		}
		if _, ok, _, _ := srv.Get(ctx, clusterstore.HeartbeatKey("host-1")); ok {
			t.Error("heartbeat survived the revoke")
		}
	})

	t.Run("host-1 cannot act as host-2 or as a server", func(t *testing.T) {
		denied := func(what string, conds []clusterstore.Cond, ops ...clusterstore.Op) {
			t.Helper()
			_, _, err := h1.Txn(ctx, conds, ops)
			if !IsPermissionDenied(err) {
				t.Errorf("%s: %v, want permission denied", what, err)
			}
		}
		for _, k := range []string{clusterstore.HeartbeatKey("host-2"), clusterstore.StatusKey("host-2", "x"), clusterstore.NodeKey("host-2"),
			clusterstore.AgentTokenKey("host-2"), alloc, clusterstore.WorkloadKey("web"), clusterstore.FencingKey("host-1"),
			clusterstore.HostStateKey("host-1"), clusterstore.TokenKey("t"), clusterstore.EventKey(time.Now(), 0, "x"),
			clusterstore.SettingsKey, clusterstore.NodeKey("host-10"), clusterstore.StatusKey("host-10", "x"), "/outside"} {
			denied("put "+k, nil, clusterstore.Put(k, []byte("host-1")))
			denied("delete "+k, nil, clusterstore.Delete(k))
		}
		denied("delete every status", nil, clusterstore.DeletePrefix(clusterstore.StatusPrefix))
		// One forbidden op spoils the transaction: nothing of it is written.
		denied("own heartbeat and host-2's", nil, clusterstore.Put(clusterstore.HeartbeatKey("host-1"), []byte("mixed")),
			clusterstore.Put(clusterstore.HeartbeatKey("host-2"), []byte("host-1")))
		if _, _, _, err := h1.Get(ctx, "/outside"); !IsPermissionDenied(err) {
			t.Errorf("read outside Bulwark's prefix: %v", err)
		}
		// A lease with host-2's heartbeat on it cannot be revoked, nor
		// another key attached to it, by host-1.
		lease, err := srv.Grant(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := srv.Txn(ctx, nil, []clusterstore.Op{clusterstore.PutWithLease(clusterstore.HeartbeatKey("host-2"), []byte("server"), lease)}); err != nil {
			t.Fatal(err)
		}
		if err := h1.Revoke(ctx, lease); !IsPermissionDenied(err) {
			t.Errorf("revoke host-2's lease: %v", err)
		}
		// Attaching a key: 3.6 checks it like a revoke; 3.4 does not (it
		// checks only the key), so host-2's agent could then no longer
		// revoke its own lease (docs/security.md says so).
		own := []clusterstore.Op{clusterstore.PutWithLease(clusterstore.HeartbeatKey("host-1"), []byte("x"), lease)}
		switch c.minor {
		case 4:
			if _, _, err := h1.Txn(ctx, nil, own); err != nil {
				t.Errorf("etcd %s: own key on host-2's lease: %v, want it written (3.4 does not check; "+
					"if this release does, update docs/security.md)", c.version, err)
			}
			if _, _, err := srv.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.HeartbeatKey("host-1"))}); err != nil {
				t.Fatal(err)
			}
		case 5:
			_, _, err := h1.Txn(ctx, nil, own)
			t.Logf("etcd %s: own key on host-2's lease: %v", c.version, err)
		default:
			denied("own key on host-2's lease", nil, own...)
		}
		// Nor kept alive (etcd 3.6 checks keepalives like revokes):
		// host-1 cannot keep a lost host-2 looking up. etcd 3.4 does not
		// check them (docs/security.md says so).
		_, err = h1.KeepAliveOnce(ctx, lease)
		switch {
		case c.minor >= 6 && !IsPermissionDenied(err):
			t.Errorf("etcd %s: keepalive of host-2's lease: %v, want permission denied", c.version, err)
		case c.minor == 4 && err != nil:
			t.Errorf("etcd %s: keepalive of host-2's lease: %v, want it granted (3.4 does not check keepalives; "+
				"if this release does, update docs/security.md)", c.version, err)
		case c.minor == 5:
			t.Logf("etcd %s: keepalive of host-2's lease: %v", c.version, err)
		}
		// Users and roles are the servers'.
		if err := AddHost(ctx, h1Cli, "host-1"); !IsPermissionDenied(err) {
			t.Errorf("host-1 manages users: %v", err)
		}
		if _, err := h1Cli.UserGrantRole(ctx, "host-1", RootRole); !IsPermissionDenied(err) {
			t.Errorf("host-1 grants itself root: %v", err)
		}
		if _, err := h1Cli.AuthDisable(ctx); !IsPermissionDenied(err) {
			t.Errorf("host-1 disables auth: %v", err)
		}
		for _, k := range []string{clusterstore.HeartbeatKey("host-2"), clusterstore.StatusKey("host-2", "x"), alloc, clusterstore.WorkloadKey("web")} {
			if kv, _, _, err := srv.Get(ctx, k); err != nil || string(kv.Value) != "server" {
				t.Errorf("%s: %q %v, want the server's value", k, kv.Value, err)
			}
		}
		// Gone now, rather than expiring while a later subtest counts
		// etcd's writes.
		if err := srv.Revoke(ctx, lease); err != nil {
			t.Error(err)
		}
	})

	t.Run("the server user does everything", func(t *testing.T) {
		ops := []clusterstore.Op{clusterstore.Put(alloc, []byte("server2")), clusterstore.Put(clusterstore.FencingKey("host-1"), []byte("f")),
			clusterstore.Put(clusterstore.HeartbeatKey("host-1"), []byte("s")), clusterstore.Put("/outside", []byte("s"))}
		if _, _, err := srv.Txn(ctx, nil, ops); err != nil {
			t.Fatal(err)
		}
		if _, _, err := srv.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.FencingKey("host-1")), clusterstore.DeletePrefix(clusterstore.StatusPrefix)}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a certificate without a user gets nothing", func(t *testing.T) {
		s, err := c.dial("host-9")
		if err == nil {
			s.Close()
			t.Fatal("host-9 connected")
		}
		if !IsPermissionDenied(err) {
			t.Errorf("host-9: %v, want permission denied", err)
		}
	})

	t.Run("idempotent", func(t *testing.T) {
		rev := c.authWrites(t, srvCli)
		if err := EnableAuth(ctx, srvCli, []string{"server-1"}, []string{"host-2", "host-1"}); err != nil {
			t.Fatal(err)
		}
		if err := AddHost(ctx, srvCli, "host-1"); err != nil {
			t.Fatal(err)
		}
		if got := c.authWrites(t, srvCli); got != rev {
			t.Errorf("auth revision (changes in etcd's log before 3.5) %d after running again, want %d: it rewrote what was already right", got, rev)
		}
		st, err := AuthStatus(ctx, srvCli)
		if err != nil || !st.Enabled {
			t.Errorf("status: %+v %v", st, err)
		}
		if got := c.authWrites(t, srvCli); got != rev {
			t.Errorf("auth revision (changes in etcd's log before 3.5) %d after reading the status, want %d", got, rev)
		}
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		rev := c.authWrites(t, srvCli)
		for _, c := range []struct {
			what string
			err  error
			want string
		}{
			{"bad host name", EnableAuth(ctx, srvCli, []string{"server-1"}, []string{"host-3", "Host_4"}), `host name "Host_4" is not a DNS label`},
			{"no server user", EnableAuth(ctx, srvCli, nil, []string{"host-3"}), "name at least one server user"},
			{"bad server user", EnableAuth(ctx, srvCli, []string{"server 1"}, []string{"host-3"}), `server user name "server 1" is not a DNS label`},
			{"a host as server user", EnableAuth(ctx, srvCli, []string{"server-1", "host-3"}, []string{"host-3"}), `"host-3" is named both as a server user and as a host`},
			{"a host's user as server user", EnableAuth(ctx, srvCli, []string{"host-2"}, []string{"host-3"}), `server user "host-2" has the role bulwark-agent-host-2`},
			{"a server user as host", EnableAuth(ctx, srvCli, []string{"server-2"}, []string{"server-1"}), `etcd user "server-1" has the root role`},
			{"add bad host", AddHost(ctx, srvCli, "-x"), `host name "-x" is not a DNS label`},
			{"add root", AddHost(ctx, srvCli, "root"), `host name "root" is reserved`},
			{"add server user", AddHost(ctx, srvCli, "server-1"), `etcd user "server-1" has the root role`},
			{"remove server user", RemoveHost(ctx, srvCli, "server-1"), `etcd user "server-1" has the root role`},
			{"remove unknown host", RemoveHost(ctx, srvCli, "host-7"), ErrUnknownHost.Error()},
		} {
			if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", c.what, c.err, c.want)
			}
		}
		if got := c.authWrites(t, srvCli); got != rev {
			t.Errorf("auth revision (changes in etcd's log before 3.5) %d after refused calls, want %d", got, rev)
		}
		if _, _, err := srv.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(alloc, []byte("server"))}); err != nil {
			t.Errorf("server-1 after the refused removal: %v", err)
		}
	})

	t.Run("add and remove a host", func(t *testing.T) {
		if _, err := c.dial("host-3"); !IsPermissionDenied(err) {
			t.Fatalf("host-3 before add-host: %v", err)
		}
		if err := AddHost(ctx, srvCli, "host-3"); err != nil {
			t.Fatal(err)
		}
		h3, _ := c.mustDial("host-3")
		if _, _, err := h3.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(clusterstore.HeartbeatKey("host-3"), []byte("h3"))}); err != nil {
			t.Errorf("host-3 heartbeat: %v", err)
		}
		if _, _, err := h3.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(clusterstore.HeartbeatKey("host-1"), []byte("h3"))}); !IsPermissionDenied(err) {
			t.Errorf("host-3 writes host-1's heartbeat: %v", err)
		}
		if err := RemoveHost(ctx, srvCli, "host-3"); err != nil {
			t.Fatal(err)
		}
		// The open connection loses its rights at once.
		if _, _, err := h3.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(clusterstore.HeartbeatKey("host-3"), []byte("h3"))}); !IsPermissionDenied(err) {
			t.Errorf("host-3 after remove-host: %v", err)
		}
		if _, _, _, err := h3.Get(ctx, alloc); !IsPermissionDenied(err) {
			t.Errorf("host-3 reads after remove-host: %v", err)
		}
		if err := RemoveHost(ctx, srvCli, "host-3"); !errors.Is(err, ErrUnknownHost) {
			t.Errorf("second remove: %v", err)
		}
	})

	t.Run("a widened role is repaired", func(t *testing.T) {
		if _, err := srvCli.RoleGrantPermission(ctx, AgentRole("host-1"), clusterstore.Prefix, clientv3.GetPrefixRangeEnd(clusterstore.Prefix),
			clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
			t.Fatal(err)
		}
		if _, err := srvCli.RoleAdd(ctx, "extra"); err != nil {
			t.Fatal(err)
		}
		if _, err := srvCli.UserGrantRole(ctx, "host-1", "extra"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := h1.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(alloc, []byte("host-1"))}); err != nil {
			t.Fatalf("widened role: %v", err)
		}
		rev := c.authWrites(t, srvCli)
		if err := AddHost(ctx, srvCli, "host-1"); err != nil {
			t.Fatal(err)
		}
		// Two changes: the extra permission revoked, the extra role
		// revoked. (The count that the idempotent runs above leave alone
		// counts these.)
		if got := c.authWrites(t, srvCli); got != rev+2 {
			t.Errorf("auth revision (changes in etcd's log before 3.5) %d after the repair, want %d", got, rev+2)
		}
		if _, _, err := h1.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(alloc, []byte("host-1"))}); !IsPermissionDenied(err) {
			t.Errorf("after repair: %v", err)
		}
		st, err := AuthStatus(ctx, srvCli)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range st.Users {
			if u.Name == "host-1" && !slices.Equal(u.Roles, []string{AgentRole("host-1")}) {
				t.Errorf("host-1's roles: %v", u.Roles)
			}
		}
	})
}

// TestEnableAuthRollsBack: when the client that enables authentication
// cannot act as root afterwards (etcd without --client-cert-auth takes no
// user from certificates; a client that is not among the server users),
// EnableAuth turns authentication off again and says why: a wrong setup
// does not lock the servers out.
func TestEnableAuthRollsBack(t *testing.T) {
	for _, b := range etcdBackends {
		t.Run(b.name, func(t *testing.T) { testEnableAuthRollsBack(t, b) })
	}
}

func testEnableAuthRollsBack(t *testing.T, b etcdBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	check := func(t *testing.T, cli *clientv3.Client, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "authentication is off again") {
			t.Errorf("EnableAuth: %v, want %q", err, want)
		}
		st, err := AuthStatus(ctx, cli)
		if err != nil {
			t.Fatalf("after the rollback: %v", err)
		}
		if st.Enabled {
			t.Error("authentication stayed on")
		}
		for _, u := range st.Users {
			if u.Name == checkUser {
				t.Errorf("%s left behind", checkUser)
			}
		}
	}
	t.Run("not a server user", func(t *testing.T) {
		c := newRBACCluster(t, b)
		_, cli := c.mustDial("server-1")
		err := EnableAuth(ctx, cli, []string{"server-2"}, []string{"host-1"})
		check(t, cli, err, "etcd does not know this client's certificate as a server user")
		// Run right, it works.
		if err := EnableAuth(ctx, cli, []string{"server-1", "server-2"}, []string{"host-1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.UserList(ctx); err != nil {
			t.Errorf("server-1 after enabling: %v", err)
		}
	})
	t.Run("etcd without --client-cert-auth", func(t *testing.T) {
		// The member still asks for a certificate (it has a CA file) but
		// does not take users from it.
		c := newRBACClusterWith(t, b, false)
		_, cli := c.mustDial("server-1")
		err := EnableAuth(ctx, cli, []string{"server-1"}, []string{"host-1"})
		check(t, cli, err, "etcd does not take the user from client certificates: start every member with --client-cert-auth")
	})
}

// TestProbeAuthEnabled: the login probe that stands in for AuthStatus on
// etcd 3.4 tells off from on, and writes nothing (etcd's raft index does
// not move).
func TestProbeAuthEnabled(t *testing.T) {
	for _, b := range etcdBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := newRBACCluster(t, b)
			_, cli := c.mustDial("server-1")
			raftIndex := func() uint64 {
				t.Helper()
				st, err := cli.Status(ctx, c.eps[0])
				if err != nil {
					t.Fatal(err)
				}
				return st.RaftIndex
			}
			probe := func(want bool) {
				t.Helper()
				before := raftIndex()
				got, err := probeAuthEnabled(ctx, cli)
				if err != nil || got != want {
					t.Errorf("etcd %s: probe %v %v, want %v", c.version, got, err, want)
				}
				if after := raftIndex(); after != before {
					t.Errorf("etcd %s: raft index %d after the probe, want %d", c.version, after, before)
				}
			}
			probe(false)
			if err := EnableAuth(ctx, cli, []string{"server-1"}, []string{"host-1"}); err != nil {
				t.Fatal(err)
			}
			probe(true)
			// As a host's agent too (no root role).
			_, h1 := c.mustDial("host-1")
			if got, err := probeAuthEnabled(ctx, h1); err != nil || !got {
				t.Errorf("probe as host-1: %v %v", got, err)
			}
		})
	}
}
