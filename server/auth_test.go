package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/scheduler"
)

func apiRoutes(t *testing.T) []string {
	t.Helper()
	h := NewHandler(memory.New(), quietLog(), func(context.Context) api.Health { return api.Health{} }, scheduler.New(scheduler.Options{}), FencingConfig{})
	var out []string
	for _, p := range h.(*routedMux).patterns {
		if p != "/" {
			out = append(out, p)
		}
	}
	return out
}

// TestEveryRouteHasARule: a route added without an access rule fails here
// (it would still be served by method: GET viewer, others admin).
func TestEveryRouteHasARule(t *testing.T) {
	routes := apiRoutes(t)
	seen := map[string]bool{"/ui/": true, "GET /metrics": true}
	for _, p := range routes {
		seen[p] = true
		if _, ok := routeRoles[p]; !ok {
			t.Errorf("route %q has no access rule in routeRoles", p)
		}
	}
	for p := range routeRoles {
		if !seen[p] {
			t.Errorf("routeRoles has a rule for %q, which is no route", p)
		}
	}
}

// concrete turns a route pattern into a method and a path.
func concrete(pattern string) (string, string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = http.MethodGet, pattern
	}
	path = strings.NewReplacer("{name}", "x1", "{addr}", "192.0.2.1").Replace(path)
	return method, path
}

// TestAuthEnforced: for every route, no token, a garbage token, an expired
// or revoked token and (on admin routes) a viewer token are refused; the
// right role gets through.
func TestAuthEnforced(t *testing.T) {
	st := memory.New()
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	admin, _, err := clusterstore.CreateToken(ctx, st, "ops", api.RoleAdmin, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	viewer, _, err := clusterstore.CreateToken(ctx, st, "dash", api.RoleViewer, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := clusterstore.CreateToken(ctx, st, "old", api.RoleAdmin, time.Millisecond, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	revoked, _, err := clusterstore.CreateToken(ctx, st, "gone", api.RoleAdmin, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clusterstore.RevokeToken(ctx, st, "gone"); err != nil {
		t.Fatal(err)
	}
	base := startAuthServer(t, st, nil)

	routes := append(apiRoutes(t), "/ui/", "GET /metrics")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, pattern := range routes {
		method, path := concrete(pattern)
		need := roleFor(pattern, method)
		code := func(tok string) int {
			req, _ := http.NewRequest(method, base+path, strings.NewReader("{}"))
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", pattern, err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == uiLoginPath {
				return http.StatusUnauthorized // the dashboard sends people to sign in
			}
			return resp.StatusCode
		}
		if need == rolePublic {
			if c := code(""); c == 401 || c == 403 {
				t.Errorf("%s is public but answered %d without a token", pattern, c)
			}
			continue
		}
		for _, bad := range []string{"", "nonsense", "bwk_000000000000_" + strings.Repeat("0", 64), expired, revoked} {
			if c := code(bad); c != http.StatusUnauthorized {
				t.Errorf("%s with token %.12q: HTTP %d, want 401", pattern, bad, c)
			}
		}
		if need == api.RoleAdmin {
			if c := code(viewer); c != http.StatusForbidden {
				t.Errorf("%s with a viewer token: HTTP %d, want 403", pattern, c)
			}
		} else if c := code(viewer); c == 401 || c == 403 {
			t.Errorf("%s with a viewer token: HTTP %d", pattern, c)
		}
		if c := code(admin); c == 401 || c == 403 {
			t.Errorf("%s with an admin token: HTTP %d", pattern, c)
		}
	}
	// Refusals change nothing.
	rev := storeRev(t, st)
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/workloads", strings.NewReader(`{"name":"w","kind":"vm","cpus":1,"memory":"1GiB"}`))
	req.Header.Set("Authorization", "Bearer "+viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || storeRev(t, st) != rev {
		t.Fatalf("viewer create: HTTP %d, revision %d -> %d", resp.StatusCode, rev, storeRev(t, st))
	}
}

func startAuthServer(t *testing.T, st clusterstore.Store, tlsCfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Name: "s1", Listener: ln, Store: st, SessionTTL: 2 * time.Second, Log: quietLog(), Auth: AuthConfig{Required: true}, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	scheme := "http://"
	if tlsCfg != nil {
		scheme = "https://"
	}
	return scheme + ln.Addr().String()
}

// selfSigned makes a CA-less server certificate for 127.0.0.1.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bulwark-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestAPIOverTLS: the right CA connects; another CA is refused.
func TestAPIOverTLS(t *testing.T) {
	st := memory.New()
	defer st.Close()
	cert, pool := selfSigned(t)
	base := startAuthServer(t, st, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	good := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := good.Get(base + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health over TLS: %d", resp.StatusCode)
	}
	_, otherPool := selfSigned(t)
	bad := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: otherPool}}}
	if _, err := bad.Get(base + "/v1/health"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client trusting another CA connected: %v", err)
	}
}

// TestDashboardLogin: the sign-in form turns a token into a cookie that the
// dashboard's reads accept and nothing else does.
func TestDashboardLogin(t *testing.T) {
	st := memory.New()
	defer st.Close()
	viewer, _, err := clusterstore.CreateToken(context.Background(), st, "dash", api.RoleViewer, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base := startAuthServer(t, st, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("/ui/ without a token: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = noRedirect.PostForm(base+"/ui/login", map[string][]string{"token": {"bwk_nope"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("bad token login: %d %v", resp.StatusCode, resp.Cookies())
	}
	resp, err = noRedirect.PostForm(base+"/ui/login", map[string][]string{"token": {viewer}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d %+v", resp.StatusCode, cookies)
	}
	get := func(method, path string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader("{}"))
		req.AddCookie(cookies[0])
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(http.MethodGet, "/ui/state.json"); c != http.StatusOK {
		t.Fatalf("state.json with the cookie: %d", c)
	}
	if c := get(http.MethodGet, "/v1/workloads"); c != http.StatusUnauthorized {
		t.Fatalf("the cookie opened the API: %d", c)
	}
	if c := get(http.MethodPost, "/v1/workloads"); c != http.StatusUnauthorized {
		t.Fatalf("the cookie allowed a change: %d", c)
	}
}
