package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// AuthConfig configures API authentication. The zero value serves the API
// without authentication (in-process tests); `bulwarkd server` turns it on
// unless told otherwise.
type AuthConfig struct {
	// Required: every request but GET /v1/health and GET /metrics needs a
	// bearer token of the role its route asks for (routeRoles).
	Required bool
}

// public routes need no token: liveness probes and Prometheus scrapes.
// /v1/health tells only whether this replica leads and the revision.
const rolePublic api.Role = "public"

// routeRoles is the access rule of every API route, by its mux pattern. A
// route registered without a rule here is served by method (GET/HEAD:
// viewer, anything else: admin) and fails TestEveryRouteHasARule.
var routeRoles = map[string]api.Role{
	"GET /v1/health":                      rolePublic,
	"GET /metrics":                        rolePublic,
	"/ui/":                                api.RoleViewer,
	"GET /v1/nodes":                       api.RoleViewer,
	"GET /v1/nodes/{name}":                api.RoleViewer,
	"GET /v1/nodes/{name}/tasks":          api.RoleViewer,
	"POST /v1/nodes/{name}/fence":         api.RoleAdmin,
	"POST /v1/nodes/{name}/clear":         api.RoleAdmin,
	"POST /v1/nodes/{name}/power-on":      api.RoleAdmin,
	"GET /v1/workloads":                   api.RoleViewer,
	"POST /v1/workloads":                  api.RoleAdmin,
	"GET /v1/workloads/{name}":            api.RoleViewer,
	"DELETE /v1/workloads/{name}":         api.RoleAdmin,
	"GET /v1/workloads/{name}/explain":    api.RoleViewer,
	"GET /v1/workloads/{name}/logs":       api.RoleViewer,
	"GET /v1/allocations":                 api.RoleViewer,
	"GET /v1/settings":                    api.RoleViewer,
	"PUT /v1/settings":                    api.RoleAdmin,
	"GET /v1/events":                      api.RoleViewer,
	"GET /v1/whatif":                      api.RoleViewer,
	"GET /v1/volumes":                     api.RoleViewer,
	"POST /v1/volumes":                    api.RoleAdmin,
	"GET /v1/volumes/{name}":              api.RoleViewer,
	"DELETE /v1/volumes/{name}":           api.RoleAdmin,
	"GET /v1/vips":                        api.RoleViewer,
	"POST /v1/vips":                       api.RoleAdmin,
	"GET /v1/vips/{addr}":                 api.RoleViewer,
	"DELETE /v1/vips/{addr}":              api.RoleAdmin,
	"POST /v1/vips/{addr}/attach":         api.RoleAdmin,
	"POST /v1/vips/{addr}/detach":         api.RoleAdmin,
	"GET /v1/nodes/{name}/maintenance":    api.RoleViewer,
	"PUT /v1/nodes/{name}/maintenance":    api.RoleAdmin,
	"DELETE /v1/nodes/{name}/maintenance": api.RoleAdmin,
	"GET /v1/nodes/{name}/drain":          api.RoleViewer,
	"POST /v1/nodes/{name}/drain":         api.RoleAdmin,
	"GET /v1/nodes/{name}/drain/plan":     api.RoleViewer,
	"POST /v1/workloads/{name}/reset":     api.RoleAdmin,
	"GET /v1/services":                    api.RoleViewer,
	"POST /v1/services":                   api.RoleAdmin,
	"GET /v1/services/{name}":             api.RoleViewer,
	"DELETE /v1/services/{name}":          api.RoleAdmin,
	"PUT /v1/services/{name}/scale":       api.RoleAdmin,
	"GET /v1/rebalance":                   api.RoleViewer,
	"POST /v1/rebalance":                  api.RoleAdmin,
}

// roleFor is the role a request needs: its route's rule, or by method
// (also for the catch-all "/", which a wrapper such as the dev cluster's
// fault endpoint may answer).
func roleFor(pattern, method string) api.Role {
	if r, ok := routeRoles[pattern]; ok {
		return r
	}
	if method == http.MethodGet || method == http.MethodHead {
		return api.RoleViewer
	}
	return api.RoleAdmin
}

// authenticator checks bearer tokens against the store, caching each
// verdict for a few seconds (a revoked token stops working within cacheFor).
type authenticator struct {
	store clusterstore.Store
	now   func() time.Time
	mu    sync.Mutex
	cache map[string]cachedToken
}

type cachedToken struct {
	rec   api.TokenRecord
	err   string
	until time.Time
}

const cacheFor = 5 * time.Second

func (a *authenticator) lookup(ctx context.Context, tok string) (api.TokenRecord, string) {
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[tok]
	a.mu.Unlock()
	if ok && now.Before(c.until) {
		if c.err == "" && c.rec.Expired(now) {
			return api.TokenRecord{}, "token " + c.rec.Name + " has expired"
		}
		return c.rec, c.err
	}
	rec, err := clusterstore.LookupToken(ctx, a.store, tok, now)
	c = cachedToken{rec: rec, until: now.Add(cacheFor)}
	if err != nil {
		c.err = err.Error()
	}
	a.mu.Lock()
	if len(a.cache) > 10000 {
		clear(a.cache) // bounded: a flood of made-up tokens cannot grow it
	}
	a.cache[tok] = c
	a.mu.Unlock()
	return c.rec, c.err
}

// uiCookie carries a token for the dashboard's own GET requests (a browser
// cannot add a bearer header to a page load). It is accepted for nothing
// else: every change still needs the header, so a forged cross-site request
// gets nowhere.
const uiCookie = "bulwark_ui"

// middleware enforces routeRoles. pattern resolves a request to its route.
func (a *authenticator) middleware(next http.Handler, pattern func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == uiLoginPath {
			a.login(w, r)
			return
		}
		need := roleFor(pattern(r), r.Method)
		if need == rolePublic {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && strings.HasPrefix(r.URL.Path, "/ui/") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if c, err := r.Cookie(uiCookie); err == nil {
				tok, ok = c.Value, true
			} else if r.URL.Path == "/ui/" {
				http.Redirect(w, r, uiLoginPath, http.StatusSeeOther)
				return
			}
		}
		if !ok || strings.TrimSpace(tok) == "" {
			denyAuth(w, http.StatusUnauthorized, "authentication required: send an API token (bulwarkctl reads it from --token, $BULWARK_TOKEN or a token file; create one with: bulwarkd token create NAME --role viewer|admin)")
			return
		}
		rec, why := a.lookup(r.Context(), strings.TrimSpace(tok))
		if why != "" {
			denyAuth(w, http.StatusUnauthorized, why)
			return
		}
		if !rec.Role.Allows(need) {
			denyAuth(w, http.StatusForbidden, "token "+rec.Name+" has role "+string(rec.Role)+"; "+r.Method+" "+r.URL.Path+" needs "+string(need))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func denyAuth(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark"`)
	}
	w.WriteHeader(status)
	code := "unauthenticated"
	if status == http.StatusForbidden {
		code = "permission_denied"
	}
	_ = json.NewEncoder(w).Encode(api.Error{Message: msg, Code: code})
}

const uiLoginPath = "/ui/login"

const loginPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bulwark: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>Bulwark</h1>
<p>The dashboard needs an API token (role viewer or admin). Create one on a server
host with <code>bulwarkd token create NAME --role viewer</code>; a dev cluster keeps
its admin token in its data dir (<code>admin.token</code>).</p>
{{MSG}}
<form method="post" action="/ui/login">
<label>Token <input type="password" name="token" size="50" autocomplete="off" autofocus></label>
<button type="submit">Sign in</button>
</form></body></html>
`

// login serves the dashboard's sign-in: a form that turns a token into an
// HttpOnly, SameSite=Strict cookie scoped to /ui/.
func (a *authenticator) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	page := func(status int, msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(strings.Replace(loginPage, "{{MSG}}", msg, 1)))
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		page(http.StatusOK, "")
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		tok := strings.TrimSpace(r.PostFormValue("token"))
		rec, why := a.lookup(r.Context(), tok)
		if why != "" || !rec.Role.Allows(api.RoleViewer) {
			page(http.StatusUnauthorized, "<p><strong>That token was not accepted.</strong></p>")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: tok, Path: "/ui/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		denyAuth(w, http.StatusMethodNotAllowed, "use GET or POST")
	}
}
