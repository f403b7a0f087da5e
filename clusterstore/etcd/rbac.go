package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// etcd's own access control (RBAC) for Bulwark.
//
// With authentication enabled and --client-cert-auth on, etcd takes the
// user of each request from the common name (CN) of the client
// certificate that made it. Bulwark's certificates are named after what
// holds them (pki: CN=<name>), so:
//
//   - each server user (the CN of a certificate that `bulwarkd server`,
//     `bulwarkd token` and `bulwarkd etcd-auth` present) has etcd's
//     built-in root role: the servers write everything and manage users;
//   - each host is a user named exactly like the host, with the single
//     role bulwark-agent-<host> (AgentPermissions): it reads Bulwark's
//     keys and writes only its own host's keys, plus the shared claim
//     keys (locks/, vipclaims/), which are per resource, not per host;
//   - every user has no password (UserAddOptions.NoPassword): only a
//     certificate signed by the cluster CA can act as it.
//
// The functions here need a client with root rights once authentication
// is on (any client before). They work with etcd 3.4 (Debian 12's 3.4.23,
// which has no-password users already) and later; etcd before 3.5 lacks
// the AuthStatus call, and whether authentication is on is then probed
// (probeAuthEnabled).

// RootUser and RootRole are etcd's built-in administrator. etcd refuses to
// enable authentication without a user named root holding the root role.
const (
	RootUser = "root"
	RootRole = "root"
)

// AgentRolePrefix starts the name of each host's role.
const AgentRolePrefix = "bulwark-agent-"

// ErrUnknownHost: no etcd user or role exists for the host.
var ErrUnknownHost = errors.New("no etcd user or role for this host")

// AgentRole is the name of host's etcd role.
func AgentRole(host string) string { return AgentRolePrefix + host }

// Permission is one key range a role may read or read and write.
type Permission struct {
	// Write: read and write; otherwise read only.
	Write bool
	// Key and RangeEnd as etcd takes them: RangeEnd "" is the single key,
	// clientv3.GetPrefixRangeEnd(Key) every key starting with Key.
	Key, RangeEnd string
}

// permFrom reads one of etcd's permissions.
func permFrom(p *authpb.Permission) Permission {
	return Permission{Write: p.PermType == authpb.READWRITE || p.PermType == authpb.WRITE,
		Key: string(p.Key), RangeEnd: string(p.RangeEnd)}
}

func (p Permission) etcdType() clientv3.PermissionType {
	if p.Write {
		return clientv3.PermissionType(clientv3.PermReadWrite)
	}
	return clientv3.PermissionType(clientv3.PermRead)
}

// String renders p for people: "read /bulwark/v1/ (prefix)",
// "readwrite /bulwark/v1/nodes/host-1".
func (p Permission) String() string {
	typ := "read"
	if p.Write {
		typ = "readwrite"
	}
	switch {
	case p.RangeEnd == "":
		return typ + " " + p.Key
	case p.RangeEnd == clientv3.GetPrefixRangeEnd(p.Key):
		return typ + " " + p.Key + " (prefix)"
	case p.RangeEnd == "\x00":
		return typ + " " + p.Key + " and every key after it"
	}
	return fmt.Sprintf("%s [%q, %q)", typ, p.Key, p.RangeEnd)
}

func writeKey(k string) Permission { return Permission{Write: true, Key: k} }
func readKey(k string) Permission  { return Permission{Key: k} }
func keyPrefix(p string, write bool) Permission {
	return Permission{Write: write, Key: p, RangeEnd: clientv3.GetPrefixRangeEnd(p)}
}

// AgentPermissions is what host's agent may do, and no more: read what it
// reconciles from (allocations, workloads, volumes, floating IPs, claims,
// its fence record); write its node record, its heartbeat, its agent
// token and its workloads' status; take and release the claims on
// volumes (locks/) and floating IPs (vipclaims/).
//
// The claim keys are per resource, so every agent may write all of them:
// an agent could write a claim naming another host. Each claim is taken
// in a transaction guarded by its allocation's existence at its epoch
// (clusterstore.AcquireClaim), but etcd cannot check what the value says.
//
// Leases need no permission of their own: any user may grant one; etcd
// 3.6 lets a user keep a lease alive, revoke it or attach a key to it
// only if it may write every key already attached (so no agent can end or
// prolong another host's heartbeat lease). etcd 3.4 checks that only for
// a revoke: there an agent can keep another host's lease alive, and
// attach its own keys to it (measured against Debian's 3.4.23,
// TestEtcdRBAC).
func AgentPermissions(host string) []Permission {
	return []Permission{
		// Reads: what the agent's reconcile lists and watches, its own
		// fence record, and the key Dial probes. Not the API's token
		// hashes, other agents' API tokens, other hosts' records or the
		// events.
		readKey(clusterstore.Prefix),
		keyPrefix(clusterstore.AllocationsPrefix, false),
		keyPrefix(clusterstore.WorkloadsPrefix, false),
		keyPrefix(clusterstore.VolumesPrefix, false),
		keyPrefix(clusterstore.VIPsPrefix, false),
		// Its fence record, watched as a prefix (so also those of hosts
		// whose names begin with this one's: fence records hold nothing
		// secret).
		keyPrefix(clusterstore.FencingKey(host), false),
		writeKey(clusterstore.NodeKey(host)),
		writeKey(clusterstore.HeartbeatKey(host)),
		keyPrefix(clusterstore.HostStatusPrefix(host), true),
		writeKey(clusterstore.AgentTokenKey(host)),
		keyPrefix(clusterstore.LocksPrefix, true),
		keyPrefix(clusterstore.VIPClaimsPrefix, true),
	}
}

// Client is the etcd client of a Store made by Dial, DialTLS or New, to
// manage users and roles over the connection the daemons' configuration
// describes.
func Client(s clusterstore.Store) (*clientv3.Client, error) {
	st, ok := s.(*store)
	if !ok {
		return nil, fmt.Errorf("%T is not an etcd store", s)
	}
	return st.cli, nil
}

// IsPermissionDenied reports whether etcd refused a request for want of
// rights: the certificate's user may not do it, or has no etcd user (to
// a request that needs the root role etcd then answers "user name not
// found").
func IsPermissionDenied(err error) bool {
	return errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrGRPCPermissionDenied) ||
		errors.Is(err, rpctypes.ErrUserNotFound)
}

func validateHost(h string) error {
	if err := api.ValidateName("host", h); err != nil {
		return err
	}
	if h == RootUser || h == checkUser {
		return fmt.Errorf("host name %q is reserved for an etcd user of its own: name the host otherwise", h)
	}
	return nil
}

// EnableAuth turns on etcd's authentication with Bulwark's users: each of
// serverUsers (at least one) gets the root role; each host a user of its
// own with exactly its role (AgentPermissions); the user root (no
// password) is made if missing. It is idempotent: run again, it changes
// only what differs (a role's permissions are set to exactly
// AgentPermissions; a host user's other roles are revoked), adds new
// hosts and leaves other users alone.
//
// Everything is checked before anything is written: a bad name, a name
// both a host and a server user, a host whose user has the root role or a
// server user that is some host's agent is an error that changes nothing.
//
// cli must be one of serverUsers (the CN of its certificate), and etcd
// must take users from certificates (--client-cert-auth). EnableAuth
// checks both once authentication is on: if cli can no longer act as
// root, it turns authentication off again (as a temporary user with a
// random password, made for that and deleted afterwards) and says why,
// so that a wrong setup cannot lock the servers out.
func EnableAuth(ctx context.Context, cli *clientv3.Client, serverUsers, hosts []string) error {
	servers, hs, err := checkNames(serverUsers, hosts)
	if err != nil {
		return fmt.Errorf("enable etcd auth: %w", err)
	}
	if len(servers) == 0 {
		return errors.New("enable etcd auth: name at least one server user (the CN of the servers' etcd certificates): " +
			"without one, nothing could manage etcd once authentication is on")
	}
	enabled, err := authEnabled(ctx, cli)
	if err != nil {
		return fmt.Errorf("enable etcd auth: %w", err)
	}
	users, err := readUsers(ctx, cli)
	if err != nil {
		return fmt.Errorf("enable etcd auth: %w", err)
	}
	for _, s := range servers {
		for _, r := range users[s] {
			if strings.HasPrefix(r, AgentRolePrefix) {
				return fmt.Errorf("enable etcd auth: server user %q has the role %s: it is a host's agent, not a server", s, r)
			}
		}
	}
	for _, h := range hs {
		if err := checkHostUser(h, users); err != nil {
			return fmt.Errorf("enable etcd auth: %w", err)
		}
	}
	// A check user left over by an interrupted run goes first.
	if _, ok := users[checkUser]; ok {
		if _, err := cli.UserDelete(ctx, checkUser); err != nil {
			return fmt.Errorf("enable etcd auth: delete %s: %w", checkUser, err)
		}
		delete(users, checkUser)
	}
	// The root user first, then the servers: should anything below fail,
	// authentication is still off and nobody is locked out.
	for _, u := range append([]string{RootUser}, servers...) {
		if err := ensureUser(ctx, cli, u, users); err != nil {
			return fmt.Errorf("enable etcd auth: %w", err)
		}
		if !slices.Contains(users[u], RootRole) {
			if _, err := cli.UserGrantRole(ctx, u, RootRole); err != nil {
				return fmt.Errorf("enable etcd auth: grant %s the root role: %w", u, err)
			}
			users[u] = append(users[u], RootRole)
		}
	}
	for _, h := range hs {
		if err := addHost(ctx, cli, h, users); err != nil {
			return fmt.Errorf("enable etcd auth: %w", err)
		}
	}
	if enabled {
		return nil
	}
	return enableChecked(ctx, cli)
}

// checkUser is the temporary user that can turn authentication off again
// when the client that turned it on finds itself locked out.
const checkUser = "bulwark-enable-check"

// enableChecked turns authentication on and checks that cli still acts
// as root; if not, it turns it off again.
func enableChecked(ctx context.Context, cli *clientv3.Client) error {
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return fmt.Errorf("enable etcd auth: %w", err)
	}
	password := hex.EncodeToString(pw)
	if _, err := cli.UserAdd(ctx, checkUser, password); err != nil {
		return fmt.Errorf("enable etcd auth: add %s: %w", checkUser, err)
	}
	if _, err := cli.UserGrantRole(ctx, checkUser, RootRole); err != nil {
		return fmt.Errorf("enable etcd auth: grant %s the root role: %w", checkUser, err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		_, _ = cli.UserDelete(ctx, checkUser)
		return fmt.Errorf("enable etcd auth: %w", err)
	}
	// Listing users needs the root role: the proof that etcd knows this
	// client as one of the server users.
	_, probe := cli.UserList(ctx)
	if probe == nil {
		if _, err := cli.UserDelete(ctx, checkUser); err != nil {
			return fmt.Errorf("etcd authentication is on, but deleting the temporary user %s failed (delete it by hand): %w", checkUser, err)
		}
		return nil
	}
	why := "etcd no longer lets this client act as a server user"
	switch {
	case errors.Is(probe, rpctypes.ErrUserEmpty):
		why = "etcd does not take the user from client certificates: start every member with --client-cert-auth " +
			"(ETCD_CLIENT_CERT_AUTH=true) and connect only directly, not through a gRPC gateway or proxy"
	case IsPermissionDenied(probe):
		why = "etcd does not know this client's certificate as a server user: its CN must be one of the server users"
	}
	tok, err := cli.Authenticate(ctx, checkUser, password)
	if err == nil {
		tctx := metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, tok.Token)
		_, err = cli.AuthDisable(tctx)
	}
	if err != nil {
		return fmt.Errorf("enable etcd auth: %s (%w); turning authentication off again FAILED: %w: "+
			"as etcd's root user, run etcdctl auth disable", why, probe, err)
	}
	if _, err := cli.UserDelete(ctx, checkUser); err != nil {
		return fmt.Errorf("enable etcd auth: %s (%w); authentication is off again, but deleting %s failed: %w", why, probe, checkUser, err)
	}
	return fmt.Errorf("enable etcd auth: %s (%w); authentication is off again", why, probe)
}

// AddHost makes (or repairs) host's user and role, as EnableAuth does for
// each host; with authentication on or off.
func AddHost(ctx context.Context, cli *clientv3.Client, host string) error {
	if err := validateHost(host); err != nil {
		return fmt.Errorf("add host: %w", err)
	}
	users, err := readUsers(ctx, cli)
	if err != nil {
		return fmt.Errorf("add host %s: %w", host, err)
	}
	if err := checkHostUser(host, users); err != nil {
		return fmt.Errorf("add host: %w", err)
	}
	if err := addHost(ctx, cli, host, users); err != nil {
		return fmt.Errorf("add host %s: %w", host, err)
	}
	return nil
}

// RemoveHost deletes host's user and role: from then on etcd refuses a
// certificate named after the host. A user with the root role is not a
// host's and is refused; ErrUnknownHost when neither exists.
func RemoveHost(ctx context.Context, cli *clientv3.Client, host string) error {
	if err := validateHost(host); err != nil {
		return fmt.Errorf("remove host: %w", err)
	}
	users, err := readUsers(ctx, cli)
	if err != nil {
		return fmt.Errorf("remove host %s: %w", host, err)
	}
	if err := checkHostUser(host, users); err != nil {
		return fmt.Errorf("remove host: %w", err)
	}
	roles, err := cli.RoleList(ctx)
	if err != nil {
		return fmt.Errorf("remove host %s: list roles: %w", host, err)
	}
	_, hasUser := users[host]
	hasRole := slices.Contains(roles.Roles, AgentRole(host))
	if !hasUser && !hasRole {
		return fmt.Errorf("remove host %s: %w", host, ErrUnknownHost)
	}
	if hasUser {
		if _, err := cli.UserDelete(ctx, host); err != nil {
			return fmt.Errorf("remove host %s: delete user: %w", host, err)
		}
	}
	if hasRole {
		if _, err := cli.RoleDelete(ctx, AgentRole(host)); err != nil {
			return fmt.Errorf("remove host %s: delete role: %w", host, err)
		}
	}
	return nil
}

// checkNames validates and deduplicates the names EnableAuth is given.
func checkNames(serverUsers, hosts []string) (servers, hs []string, err error) {
	var errs []error
	for _, s := range serverUsers {
		if e := api.ValidateName("server user", s); e != nil {
			errs = append(errs, e)
		} else if s == checkUser {
			errs = append(errs, fmt.Errorf("server user %q is reserved for enable's own check", s))
		} else if !slices.Contains(servers, s) {
			servers = append(servers, s)
		}
	}
	for _, h := range hosts {
		switch e := validateHost(h); {
		case e != nil:
			errs = append(errs, e)
		case slices.Contains(servers, h):
			errs = append(errs, fmt.Errorf("%q is named both as a server user and as a host: a server's etcd "+
				"certificate must not be named like a host (its agent would get the server's rights)", h))
		case !slices.Contains(hs, h):
			hs = append(hs, h)
		}
	}
	return servers, hs, errors.Join(errs...)
}

// checkHostUser refuses to turn an administrator into a host.
func checkHostUser(host string, users map[string][]string) error {
	if slices.Contains(users[host], RootRole) {
		return fmt.Errorf("etcd user %q has the root role: it is a server user or an administrator, not only host %s's agent; "+
			"name the server's certificate differently from every host", host, host)
	}
	return nil
}

// readUsers lists etcd's users and their roles.
func readUsers(ctx context.Context, cli *clientv3.Client) (map[string][]string, error) {
	list, err := cli.UserList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd users: %w", err)
	}
	users := make(map[string][]string, len(list.Users))
	for _, u := range list.Users {
		got, err := cli.UserGet(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("read etcd user %s: %w", u, err)
		}
		users[u] = got.Roles
	}
	return users, nil
}

// ensureUser adds user without a password if it is missing from users
// (and then records it there).
func ensureUser(ctx context.Context, cli *clientv3.Client, user string, users map[string][]string) error {
	if _, ok := users[user]; ok {
		return nil
	}
	if _, err := cli.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil &&
		!errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("add user %s: %w", user, err)
	}
	users[user] = nil
	return nil
}

// addHost makes host's role exactly AgentPermissions and its user hold
// that role alone.
func addHost(ctx context.Context, cli *clientv3.Client, host string, users map[string][]string) error {
	role := AgentRole(host)
	if err := ensureRole(ctx, cli, role, AgentPermissions(host)); err != nil {
		return err
	}
	if err := ensureUser(ctx, cli, host, users); err != nil {
		return err
	}
	for _, r := range users[host] {
		if r != role {
			if _, err := cli.UserRevokeRole(ctx, host, r); err != nil {
				return fmt.Errorf("revoke role %s from %s: %w", r, host, err)
			}
		}
	}
	if !slices.Contains(users[host], role) {
		if _, err := cli.UserGrantRole(ctx, host, role); err != nil {
			return fmt.Errorf("grant %s the role %s: %w", host, role, err)
		}
	}
	users[host] = []string{role}
	return nil
}

// ensureRole makes role hold exactly perms, writing only what differs:
// each change bumps etcd's auth revision, which makes requests in flight
// retry.
func ensureRole(ctx context.Context, cli *clientv3.Client, role string, perms []Permission) error {
	var have []Permission
	got, err := cli.RoleGet(ctx, role)
	switch {
	case errors.Is(err, rpctypes.ErrRoleNotFound):
		if _, err := cli.RoleAdd(ctx, role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("add role %s: %w", role, err)
		}
	case err != nil:
		return fmt.Errorf("read role %s: %w", role, err)
	default:
		for _, p := range got.Perm {
			have = append(have, permFrom(p))
		}
	}
	for _, p := range have {
		if !slices.Contains(perms, p) {
			if _, err := cli.RoleRevokePermission(ctx, role, p.Key, p.RangeEnd); err != nil &&
				!errors.Is(err, rpctypes.ErrPermissionNotGranted) {
				return fmt.Errorf("role %s: revoke %s: %w", role, p, err)
			}
		}
	}
	for _, p := range perms {
		if !slices.Contains(have, p) {
			if _, err := cli.RoleGrantPermission(ctx, role, p.Key, p.RangeEnd, p.etcdType()); err != nil {
				return fmt.Errorf("role %s: grant %s: %w", role, p, err)
			}
		}
	}
	return nil
}

// AuthState is etcd's authentication: whether it is on, its users and
// roles.
type AuthState struct {
	Enabled bool
	// Unknown says why etcd could not tell whether authentication is on
	// (Enabled is then false); "" when it could.
	Unknown string
	// Revision counts changes to users, roles and permissions; 0 when
	// etcd does not tell (before 3.5).
	Revision uint64
	// Probed: etcd predates the AuthStatus call (3.5), so Enabled was
	// learned by a probe (see authEnabled); EtcdVersion is then the
	// member's version ("" if it did not say).
	Probed      bool
	EtcdVersion string
	Users       []User
	Roles       []Role
}

// User is one etcd user and its roles, sorted.
type User struct {
	Name  string
	Roles []string
}

// Role is one etcd role and its permissions (none for root, which may do
// everything).
type Role struct {
	Name  string
	Perms []Permission
}

// AuthStatus reads etcd's authentication state. With authentication on
// it needs the root role. From an etcd without the AuthStatus call (3.4)
// it is probed (Probed, without a Revision); when the probe cannot tell,
// Unknown says why and the users and roles are still read.
func AuthStatus(ctx context.Context, cli *clientv3.Client) (AuthState, error) {
	var s AuthState
	st, err := cli.AuthStatus(ctx)
	switch {
	case err == nil:
		s.Enabled, s.Revision = st.Enabled, st.AuthRevision
	case isUnimplemented(err):
		s.Probed = true
		var perr error
		if s.Enabled, perr = probeAuthEnabled(ctx, cli); perr != nil {
			s.Unknown = perr.Error()
		}
		if eps := cli.Endpoints(); len(eps) > 0 {
			if ms, err := cli.Status(ctx, eps[0]); err == nil {
				s.EtcdVersion = ms.Version
			}
		}
	default:
		return AuthState{}, fmt.Errorf("etcd auth status: %w", err)
	}
	users, err := readUsers(ctx, cli)
	if err != nil {
		return AuthState{}, err
	}
	for name, roles := range users {
		roles = slices.Clone(roles)
		sort.Strings(roles)
		s.Users = append(s.Users, User{Name: name, Roles: roles})
	}
	sort.Slice(s.Users, func(i, j int) bool { return s.Users[i].Name < s.Users[j].Name })
	roles, err := cli.RoleList(ctx)
	if err != nil {
		return AuthState{}, fmt.Errorf("list etcd roles: %w", err)
	}
	for _, name := range roles.Roles {
		r := Role{Name: name}
		got, err := cli.RoleGet(ctx, name)
		if err != nil {
			return AuthState{}, fmt.Errorf("read etcd role %s: %w", name, err)
		}
		for _, p := range got.Perm {
			r.Perms = append(r.Perms, permFrom(p))
		}
		s.Roles = append(s.Roles, r)
	}
	sort.Slice(s.Roles, func(i, j int) bool { return s.Roles[i].Name < s.Roles[j].Name })
	return s, nil
}

// authEnabled reports whether etcd's authentication is on: by the
// AuthStatus call where etcd has it (3.5 and later), else by
// probeAuthEnabled.
func authEnabled(ctx context.Context, cli *clientv3.Client) (bool, error) {
	st, err := cli.AuthStatus(ctx)
	if err == nil {
		return st.Enabled, nil
	}
	if !isUnimplemented(err) {
		return false, fmt.Errorf("etcd auth status: %w", err)
	}
	return probeAuthEnabled(ctx, cli)
}

// isUnimplemented: etcd does not know the call (AuthStatus before 3.5:
// "unknown method AuthStatus").
func isUnimplemented(err error) bool { return status.Code(err) == codes.Unimplemented }

// probeUser is a user name no one can have made with Bulwark (it is not a
// DNS label), logged in as by probeAuthEnabled.
const probeUser = "bulwark auth probe"

// probeAuthEnabled finds out whether authentication is on from an etcd
// without AuthStatus (3.4): it logs in as probeUser with a wrong
// password. etcd checks a login before anything else, and answers
// "authentication is not enabled" when it is off, "authentication
// failed" when it is on (a user that does not exist). Neither writes
// anything (a failed login is not replicated, and leaves no token);
// etcd logs the failed one at warning level.
func probeAuthEnabled(ctx context.Context, cli *clientv3.Client) (bool, error) {
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return false, err
	}
	_, err := cli.Authenticate(ctx, probeUser, hex.EncodeToString(pw))
	switch {
	case errors.Is(err, rpctypes.ErrAuthNotEnabled):
		return false, nil
	case err == nil, errors.Is(err, rpctypes.ErrAuthFailed):
		return true, nil
	case status.Code(err) == codes.Unknown && strings.Contains(err.Error(), "authentication failed"):
		// 3.4's answer for a user without a password (not expected for
		// probeUser, but it too says authentication is on).
		return true, nil
	}
	return false, fmt.Errorf("etcd has no AuthStatus call (it is older than 3.5), and a login meant to find out "+
		"whether authentication is on gave neither answer: %w", err)
}
