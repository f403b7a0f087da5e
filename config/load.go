package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/bulwarkhq/bulwark/internal/spelling"
	"io"
	"io/fs"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration, with where it is.
type Problem struct {
	Origin Origin
	// Key is the setting concerned ("" for the file as a whole).
	Key string
	Msg string
}

func (p Problem) Error() string {
	var b strings.Builder
	switch p.Origin.Source {
	case FromFile, FromFlag:
		b.WriteString(p.Origin.String())
		b.WriteString(": ")
		if p.Key != "" && p.Origin.Source == FromFile {
			b.WriteString(p.Key)
			b.WriteString(": ")
		}
	case FromEnv:
		fmt.Fprintf(&b, "%s (%s): ", p.Origin, p.Key)
	default:
		if p.Key != "" {
			b.WriteString(p.Key)
			b.WriteString(": ")
		}
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every problem found in a configuration, one per line.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func asError(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: ps}
}

// Config is a *Server or an *Agent.
type Config interface {
	Kind() Kind
	// CheckFiles checks the files the configuration names (TLS material,
	// the BMC password) can be read and parsed by this process.
	CheckFiles() error
}

// Kind is KindServer.
func (*Server) Kind() Kind { return KindServer }

// Kind is KindAgent.
func (*Agent) Kind() Kind { return KindAgent }

// Inputs are the sources of a daemon's configuration besides the defaults.
type Inputs struct {
	// Path is the config file. Empty: the kind's default path, which may be
	// missing (then only defaults, environment and flags apply). A path
	// given here must exist; /dev/null reads as an empty file.
	Path string
	// DefaultPath replaces the kind's default path (tests).
	DefaultPath string
	// Env looks up an environment variable, like os.LookupEnv. An empty
	// value counts as unset. Nil: no environment.
	Env func(string) (string, bool)
	// Flags are the flags given on the command line, by name without
	// dashes, with their values in order (a repeatable flag may have
	// several). Flags not given must be absent.
	Flags map[string][]string
}

// LoadServer builds the configuration of `bulwarkd server` from defaults,
// the file, the environment and the flags, in rising precedence. The error
// is an *Error listing every problem.
func LoadServer(in Inputs) (*Server, error) {
	c := DefaultServer()
	if err := resolve(KindServer, c, c.origins, in); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadAgent is LoadServer for `bulwarkd agent`.
func LoadAgent(in Inputs) (*Agent, error) {
	c := DefaultAgent()
	if err := resolve(KindAgent, c, c.origins, in); err != nil {
		return nil, err
	}
	return c, nil
}

// CheckFile validates one file on its own (defaults plus the file; no
// environment, no flags, no files it names). kind "" takes the kind from
// the file's top-level `kind:` key; a kind given and a different `kind:` in
// the file is a problem.
func CheckFile(path string, kind Kind) (Config, error) {
	if kind != "" && !kind.valid() {
		return nil, fmt.Errorf("kind %q: use server or agent", kind)
	}
	if path == "" {
		return nil, errors.New("no config file named")
	}
	doc, ps := readFile(path, true)
	if len(ps) > 0 {
		return nil, asError(ps)
	}
	if kind == "" {
		if !doc.kindSet {
			return nil, asError([]Problem{{Origin: Origin{Source: FromFile, File: path},
				Msg: "cannot tell a server config from an agent config: add a top-level `kind: server` or `kind: agent`, or pass --kind"}})
		}
		kind = doc.kind
	}
	var cfg Config
	var o origins
	if kind == KindAgent {
		a := DefaultAgent()
		cfg, o = a, a.origins
	} else {
		s := DefaultServer()
		cfg, o = s, s.origins
	}
	ps = applyFile(doc, kind, cfg, o)
	ps = append(ps, crossCheck(kind, cfg, o)...)
	if len(ps) > 0 {
		return nil, asError(ps)
	}
	return cfg, nil
}

func resolve(kind Kind, cfg any, o origins, in Inputs) error {
	var ps []Problem
	path := in.Path
	if path == "" {
		path = in.DefaultPath
	}
	if path == "" {
		path = kind.DefaultPath()
	}
	doc, fps := readFile(path, in.Path != "")
	ps = append(ps, fps...)
	if doc != nil {
		ps = append(ps, applyFile(doc, kind, cfg, o)...)
	}
	ps = append(ps, applyEnv(kind, cfg, o, in.Env)...)
	ps = append(ps, applyFlags(kind, cfg, o, in.Flags)...)
	if len(ps) == 0 {
		// Cross-setting rules only make sense once every value parsed.
		ps = crossCheck(kind, cfg, o)
	}
	return asError(ps)
}

// fileDoc is a parsed config file.
type fileDoc struct {
	path string
	root *yaml.Node // a mapping; nil for an empty file
	kind Kind
	// kindSet: the file has a valid top-level kind: key at kindAt.
	kindSet bool
	kindAt  Origin
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// readFile reads and parses a file. A missing file is no problem unless
// explicit; then (nil, nil) is returned.
func readFile(path string, explicit bool) (*fileDoc, []Problem) {
	at := Origin{Source: FromFile, File: path}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if !explicit {
				return nil, nil
			}
			return nil, []Problem{{Origin: at, Msg: "config file does not exist"}}
		}
		return nil, []Problem{{Origin: at, Msg: fmt.Sprintf("cannot read the config file: %v", cause(err))}}
	}
	doc := &fileDoc{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if err == io.EOF {
			return doc, nil // empty, or only comments
		}
		return nil, []Problem{syntaxProblem(path, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return nil, []Problem{syntaxProblem(path, err)}
		}
		return nil, []Problem{{Origin: nodeOrigin(path, &extra),
			Msg: "a second YAML document (after ---); a config file holds one"}}
	}
	root := deref(&n)
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = deref(root.Content[0])
	}
	if isNull(root) {
		return doc, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, []Problem{{Origin: nodeOrigin(path, root),
			Msg: "the file must be a mapping of settings (key: value), not " + describe(root)}}
	}
	doc.root = root
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		if k.Value != "kind" {
			continue
		}
		kd, err := ParseKind(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil {
			return nil, []Problem{{Origin: nodeOrigin(path, v), Key: "kind", Msg: fmt.Sprintf("%s is not a kind: use server or agent", describeValue(v))}}
		}
		doc.kind, doc.kindSet, doc.kindAt = kd, true, nodeOrigin(path, v)
	}
	return doc, nil
}

func syntaxProblem(path string, err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Origin: Origin{Source: FromFile, File: path, Line: line}, Msg: "not valid YAML: " + m[2]}
	}
	return Problem{Origin: Origin{Source: FromFile, File: path}, Msg: "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func applyFile(doc *fileDoc, kind Kind, cfg any, o origins) []Problem {
	var ps []Problem
	if doc.kindSet && doc.kind != kind {
		ps = append(ps, Problem{Origin: doc.kindAt, Key: "kind",
			Msg: fmt.Sprintf("this is %s config, but %s config is being read", doc.kind.article(), kind.article())})
	}
	if doc.root == nil {
		return ps
	}
	w := walker{doc: doc, kind: kind, cfg: cfg, o: o, sections: sections(kind)}
	w.mapping(doc.root, "")
	return append(ps, w.ps...)
}

type walker struct {
	doc      *fileDoc
	kind     Kind
	cfg      any
	o        origins
	sections map[string]bool
	ps       []Problem
}

func (w *walker) problem(n *yaml.Node, key, msg string) {
	w.ps = append(w.ps, Problem{Origin: nodeOrigin(w.doc.path, n), Key: key, Msg: msg})
}

func (w *walker) mapping(m *yaml.Node, prefix string) {
	firstAt := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := m.Content[i], deref(m.Content[i+1])
		key := kn.Value
		full := key
		if prefix != "" {
			full = prefix + "." + key
		}
		if kn.Kind != yaml.ScalarNode {
			w.problem(kn, "", "a key must be a plain name, not "+describe(kn))
			continue
		}
		if line, dup := firstAt[key]; dup {
			w.problem(kn, full, fmt.Sprintf("duplicate key (first given on line %d)", line))
			continue
		}
		firstAt[key] = kn.Line
		if full == "kind" {
			continue // read by readFile
		}
		if s, ok := lookupSetting(w.kind, full); ok {
			w.setting(s, vn)
			continue
		}
		if w.sections[full] {
			switch {
			case isNull(vn):
			case vn.Kind == yaml.MappingNode:
				w.mapping(vn, full)
			default:
				w.problem(vn, full, fmt.Sprintf("expected a mapping of %s settings, got %s", full, describe(vn)))
			}
			continue
		}
		w.problem(kn, "", unknownKey(w.kind, full))
	}
}

func (w *walker) setting(s setting, n *yaml.Node) {
	if isNull(n) {
		return // no value: the default applies
	}
	if s.shape == tree {
		ps := s.node(w.cfg, n, w.doc.path, w.o)
		w.ps = append(w.ps, ps...)
		if len(ps) == 0 {
			w.o[s.Key] = nodeOrigin(w.doc.path, n)
		}
		return
	}
	var v value
	bad := func(want string) { w.problem(n, s.Key, fmt.Sprintf("expected %s, got %s", want, describe(n))) }
	switch s.shape {
	case scalar:
		if n.Kind != yaml.ScalarNode {
			bad("a single value")
			return
		}
		v.scalar = n.Value
	case list:
		switch n.Kind {
		case yaml.ScalarNode:
			v.list = splitList([]string{n.Value})
		case yaml.SequenceNode:
			v.list = []string{}
			for _, item := range n.Content {
				item = deref(item)
				if item.Kind != yaml.ScalarNode || isNull(item) {
					w.problem(item, s.Key, "expected a list of values, got an item that is "+describe(item))
					return
				}
				v.list = append(v.list, strings.TrimSpace(item.Value))
			}
		default:
			bad("a list")
			return
		}
	case pairs:
		if n.Kind != yaml.MappingNode {
			bad("a mapping (key: value on separate lines)")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := deref(n.Content[i]), deref(n.Content[i+1])
			if kn.Kind != yaml.ScalarNode || vn.Kind != yaml.ScalarNode {
				w.problem(vn, s.Key, "expected key: value with plain values")
				return
			}
			val := vn.Value
			if isNull(vn) {
				val = ""
			}
			v.pairs = append(v.pairs, [2]string{kn.Value, val})
		}
	}
	if err := s.apply(w.cfg, v); err != nil {
		w.problem(n, s.Key, err.Error())
		return
	}
	w.o[s.Key] = nodeOrigin(w.doc.path, n)
}

func applyEnv(kind Kind, cfg any, o origins, env func(string) (string, bool)) []Problem {
	if env == nil {
		return nil
	}
	var ps []Problem
	for _, s := range schema(kind) {
		if s.FileOnly {
			continue
		}
		raw, ok := env(s.Env)
		if !ok || raw == "" {
			continue
		}
		at := Origin{Source: FromEnv, Name: s.Env}
		if err := applyStrings(s, cfg, []string{raw}); err != nil {
			ps = append(ps, Problem{Origin: at, Key: s.Key, Msg: err.Error()})
			continue
		}
		o[s.Key] = at
	}
	return ps
}

func applyFlags(kind Kind, cfg any, o origins, flags map[string][]string) []Problem {
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	sort.Strings(names)
	byFlag := map[string]setting{}
	for _, s := range schema(kind) {
		if !s.FileOnly {
			byFlag[s.Flag] = s
		}
	}
	var ps []Problem
	for _, name := range names {
		at := Origin{Source: FromFlag, Name: name}
		s, ok := byFlag[name]
		if !ok {
			ps = append(ps, Problem{Origin: at, Msg: fmt.Sprintf("not a %s setting", kind)})
			continue
		}
		if err := applyStrings(s, cfg, flags[name]); err != nil {
			ps = append(ps, Problem{Origin: at, Key: s.Key, Msg: err.Error()})
			continue
		}
		o[s.Key] = at
	}
	return ps
}

func applyStrings(s setting, cfg any, in []string) error {
	if s.shape == tree {
		return fmt.Errorf("%s can only be given in the config file", s.Key)
	}
	v, err := fromStrings(s.shape, in)
	if err != nil {
		return err
	}
	return s.apply(cfg, v)
}

// crossCheck applies the rules that involve several settings.
func crossCheck(kind Kind, cfg any, o origins) []Problem {
	at := func(key string) Origin { return o.get(key) }
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Origin: at(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	var e Etcd
	switch c := cfg.(type) {
	case *Server:
		e = c.Etcd
	case *Agent:
		e = c.Etcd
		b := c.BMC
		if b.URL != "" {
			if b.Username == "" {
				add("bmc.url", "bmc.username is needed with bmc.url")
			}
			if b.PasswordFile == "" {
				add("bmc.url", "bmc.password_file is needed with bmc.url")
			}
		} else {
			if b.Username != "" {
				add("bmc.username", "bmc.username is set but bmc.url is not")
			}
			if b.PasswordFile != "" {
				add("bmc.password_file", "bmc.password_file is set but bmc.url is not")
			}
			if b.Insecure {
				add("bmc.insecure", "bmc.insecure is set but bmc.url is not")
			}
		}
		ps = append(ps, checkAgentHTTP(c, at)...)
	}
	if e.CertFile != "" && e.KeyFile == "" {
		add("etcd.cert_file", "etcd.key_file is needed with etcd.cert_file")
	}
	if e.KeyFile != "" && e.CertFile == "" {
		add("etcd.key_file", "etcd.cert_file is needed with etcd.key_file")
	}
	if e.TLSEnabled() {
		for _, ep := range e.Endpoints {
			if strings.HasPrefix(ep, "http://") {
				add("etcd.endpoints", "endpoint %q is plain http but etcd TLS files are set; use https:// endpoints", ep)
				break
			}
		}
	}
	return ps
}

// checkAgentHTTP applies the rules of the agent's API: its certificate
// and key go together, http_insecure excludes http_tls, and an API that
// listens beyond loopback serves HTTPS unless http_insecure says otherwise.
func checkAgentHTTP(c *Agent, at func(string) Origin) []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Origin: at(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.HTTPTLSCertFile != "" && c.HTTPTLSKeyFile == "" {
		add("http_tls.cert_file", "http_tls.key_file is needed with http_tls.cert_file")
	}
	if c.HTTPTLSKeyFile != "" && c.HTTPTLSCertFile == "" {
		add("http_tls.key_file", "http_tls.cert_file is needed with http_tls.key_file")
	}
	if c.HTTPInsecure && (c.HTTPTLSCertFile != "" || c.HTTPTLSKeyFile != "") {
		key := "http_tls.cert_file"
		if c.HTTPTLSCertFile == "" {
			key = "http_tls.key_file"
		}
		add(key, "http_tls is set but so is http_insecure, which serves the agent's API over plain HTTP: keep one")
	}
	if c.HTTPListen == "" || c.HTTPInsecure || c.HTTPTLSCertFile != "" || c.Etcd.CertFile != "" {
		return ps
	}
	if host, _, err := net.SplitHostPort(c.HTTPListen); err == nil && !IsLoopback(host) {
		add("http_listen", "the agent's API would serve %s over plain HTTP, its token and the workloads' logs in clear: "+
			"give it a certificate (etcd.cert_file, the host's agent certificate, serves it by default; or http_tls.cert_file "+
			"and key_file), listen on a loopback address, or set http_insecure: true to accept plain HTTP", c.HTTPListen)
	}
	return ps
}

// IsLoopback reports whether host (of host:port) is a loopback address or
// localhost; "" and unspecified addresses (0.0.0.0, ::) are not.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func unknownKey(kind Kind, full string) string {
	msg := fmt.Sprintf("unknown key %q", full)
	other := KindAgent
	if kind == KindAgent {
		other = KindServer
	}
	if _, ok := lookupSetting(other, full); ok || sections(other)[full] {
		msg = fmt.Sprintf("%s: that is %s setting; this is %s config", msg, other.article(), kind.article())
		if kind == KindServer && (full == "bmc" || strings.HasPrefix(full, "bmc.")) {
			msg += " (and a deprecated one: give each host's fence devices here, under fencing.hosts)"
		}
		return msg
	}
	if s := suggest(kind, full); s != "" {
		return fmt.Sprintf("%s (did you mean %q?)", msg, s)
	}
	return msg
}

// suggest finds the known key closest to a mistyped one.
func suggest(kind Kind, full string) string {
	last := full[strings.LastIndex(full, ".")+1:]
	best, bestD := "", 3
	cands := []string{"kind"}
	for s := range sections(kind) {
		cands = append(cands, s)
	}
	for _, s := range schema(kind) {
		cands = append(cands, s.Key)
	}
	sort.Strings(cands)
	bestRaw := 0
	for _, c := range cands {
		raw := spelling.Distance(full, c)
		d := raw
		if cl := c[strings.LastIndex(c, ".")+1:]; cl == last && c != full {
			d = min(d, 2) // right name, wrong section
		}
		// On a tie the closer spelling wins (ca_file: etcd.ca_file
		// rather than agents.ca_file).
		if d < bestD || d == bestD && best != "" && raw < bestRaw {
			best, bestD, bestRaw = c, d, raw
		}
	}
	return best
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func nodeOrigin(path string, n *yaml.Node) Origin {
	return Origin{Source: FromFile, File: path, Line: n.Line, Column: n.Column}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return describeValue(n)
	}
	return "something else"
}

func describeValue(n *yaml.Node) string {
	if isNull(n) {
		return "no value"
	}
	if n.Kind != yaml.ScalarNode {
		return describe(n)
	}
	return strconv.Quote(n.Value)
}
