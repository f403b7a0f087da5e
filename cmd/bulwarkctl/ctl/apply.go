package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// maxSpecFile bounds the size of an apply file.
const maxSpecFile = 1 << 20

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "create a workload from a YAML or JSON file",
		Description: `Reads one workload spec from FILE (YAML or JSON; "-f -" reads standard
input), checks it, and creates the workload. The fields are:
   name      required; 1-63 lowercase letters, digits and '-'
   kind      required; vm or container
   cpus      required; 1 to 4096
   memory    required; at least 64MiB, e.g. 512MiB, 2GiB
   labels    optional map of key: value
   priority  optional; 0 to 1000, default 0
   require   optional list of host-label constraints that must hold:
             key=value, key!=value, "key in (a,b)", "key notin (a,b)"
   prefer    optional list of host-label preferences key=value[:weight],
             weight 1 to 100 (default 1)
   anti_affinity  optional group name: no two members on one host
   spread_by      optional host label key to spread the group over
             (needs anti_affinity); see 'bulwarkctl vm create --help'
   restart   optional; always (default), on-failure or never: what the
             host does when the workload stops by itself (see
             'bulwarkctl vm create --help')
   vm        VMs only, optional; every path absolute, as the hosts see it:
      disks     list of disk images, attached as vda, vdb, ... (at most 16):
         path       required, e.g. /srv/images/web1.qcow2
         format     raw (default) or qcow2
         read_only  true or false (default)
      kernel    kernel to boot directly, without a bootloader
      initrd    initial ramdisk for kernel (needs kernel)
      cmdline   kernel command line (needs kernel)
      networks  list of network cards (at most 8):
         bridge     required; host bridge, e.g. br0
         mac        optional, e.g. 52:54:00:12:34:56
   image     containers only, required: an image reference such as
             docker.io/library/nginx:1.27, or an OCI image archive that
             every host can read: "oci-archive:/srv/images/app.tar" (its
             first image) or "oci-archive:/srv/images/app.tar#app:1.4"
   command   containers only, optional: list, the program and its
             arguments, run instead of the image's default
   env       containers only, optional: map of NAME: value
A field that is not in this list is an error, so typos are caught; if the
file is invalid, nothing is sent to the server.

Running apply again with the same file is safe: if the workload exists with
exactly this spec, apply prints "unchanged" and succeeds. Changing an
existing workload is not supported yet: apply then fails and names the
fields that differ; delete the workload first
("bulwarkctl workload delete NAME --wait"), then apply again.

Example file web.yaml:
   name: web-1
   kind: vm
   cpus: 2
   memory: 2GiB
   labels:
     tier: front
   require:
     - rack in (r1,r2)
   prefer:
     - disk=ssd:50
   anti_affinity: web
   restart: on-failure
   vm:
     disks:
       - path: /srv/images/web1.qcow2
         format: qcow2
       - path: /srv/images/seed.iso
         read_only: true
     networks:
       - bridge: br0

Example file app.yaml:
   name: app-1
   kind: container
   cpus: 1
   memory: 256MiB
   image: oci-archive:/srv/images/app.tar#app:1.4
   command: [/app/server, --port, "8080"]
   env:
     LOG_LEVEL: debug

Examples:
   bulwarkctl apply -f web.yaml
   bulwarkctl apply -f app.yaml -o json
   cat web.json | bulwarkctl apply -f -`,
		Flags: withGlobal(
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "workload spec `FILE` (YAML or JSON), or - for standard input"},
		),
		Action: leaf(apply),
	}
}

func apply(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	file := c.String("file")
	if file == "" {
		return fmt.Errorf("missing -f FILE: name the workload spec file, or use -f - to read standard input (see '%s --help')", helpName(c))
	}
	spec, err := readSpec(c.App.Reader, file)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	w, err := s.api.CreateWorkload(s.ctx, spec)
	if err == nil {
		if s.format == formatTable {
			fmt.Fprintf(s.out, "%s %q created\n", w.Kind, w.Name)
		}
		return s.printWorkload(w)
	}
	if !client.IsConflict(err) {
		return explain(err, "workload", "")
	}
	if msg := apiMessage(err); msg != "" && !(strings.HasPrefix(msg, "workload ") && strings.HasSuffix(msg, "already exists")) {
		// A conflict that is not the name: a floating IP attached
		// elsewhere, a volume changed meanwhile. Say what it was.
		return fmt.Errorf("%s: %s", spec.Name, msg)
	}
	return applyExisting(s, spec)
}

// applyExisting handles a create that failed because the name is taken:
// an identical spec is "unchanged", anything else is refused.
func applyExisting(s *session, spec api.WorkloadSpec) error {
	cur, err := s.api.GetWorkload(s.ctx, spec.Name)
	if err != nil {
		if client.IsNotFound(err) {
			// It went away between the two requests, most likely a
			// deletion finishing.
			return fmt.Errorf("workload %q was being replaced or deleted while applying; run apply again", spec.Name)
		}
		return explain(err, "workload", spec.Name)
	}
	if cur.Deleting {
		return fmt.Errorf("workload %q is being deleted; wait until it is gone (bulwarkctl workload delete %s --wait), then apply again", spec.Name, spec.Name)
	}
	if diff := specDiff(cur.WorkloadSpec, spec); len(diff) > 0 {
		return fmt.Errorf("workload %q already exists with a different %s; changing an existing workload is not supported yet: delete it first (bulwarkctl workload delete %s --wait), then apply again",
			spec.Name, strings.Join(diff, ", "), spec.Name)
	}
	if s.format != formatTable {
		return s.print(cur)
	}
	fmt.Fprintf(s.out, "%s %q unchanged\n", cur.Kind, cur.Name)
	return nil
}

// specDiff names, by their JSON names, the fields in which a and b differ.
// Empty and missing maps, lists and sections count as equal. It walks the
// struct so that fields added to api.WorkloadSpec are compared too.
func specDiff(a, b api.WorkloadSpec) []string {
	var d []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for _, f := range reflect.VisibleFields(va.Type()) {
		if !f.IsExported() || f.Anonymous || f.Name == "Name" {
			continue
		}
		x, y := va.FieldByIndex(f.Index), vb.FieldByIndex(f.Index)
		if isEmpty(x) && isEmpty(y) {
			continue
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			d = append(d, jsonName(f))
		}
	}
	return d
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Map, reflect.Slice:
		return v.Len() == 0
	}
	return v.IsZero()
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// knownFields lists the JSON names of the fields of a workload spec.
func knownFields() string {
	var names []string
	for _, f := range reflect.VisibleFields(reflect.TypeOf(api.WorkloadSpec{})) {
		if f.IsExported() && !f.Anonymous && f.Tag.Get("json") != "-" {
			names = append(names, jsonName(f))
		}
	}
	return strings.Join(names, ", ")
}

// readSpec reads, decodes and validates the spec in file ("-" is r).
func readSpec(r io.Reader, file string) (api.WorkloadSpec, error) {
	what := file
	if file == "-" {
		what = "standard input"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return api.WorkloadSpec{}, fmt.Errorf("cannot read the workload file: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxSpecFile+1))
	if err != nil {
		return api.WorkloadSpec{}, fmt.Errorf("reading %s: %w", what, err)
	}
	if len(data) > maxSpecFile {
		return api.WorkloadSpec{}, fmt.Errorf("%s is larger than %s; a workload spec is a few lines", what, api.ByteSize(maxSpecFile))
	}
	spec, err := decodeSpec(data)
	if err != nil {
		return spec, fmt.Errorf("%s: %w (nothing was sent to the server)", what, err)
	}
	if err := spec.Validate(); err != nil {
		return spec, invalidInput("workload spec in "+what, err)
	}
	return spec, nil
}

var errEmpty = errors.New("the file is empty; it should hold one workload spec (see 'bulwarkctl apply --help')")

var yamlDocSep = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// decodeSpec reads one WorkloadSpec from JSON (if the text starts with '{')
// or YAML. Unknown and, in YAML, duplicate fields are errors.
func decodeSpec(data []byte) (api.WorkloadSpec, error) {
	var spec api.WorkloadSpec
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return spec, errEmpty
	}
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			var se *json.SyntaxError
			switch {
			case errors.As(err, &se):
				line := 1 + bytes.Count(trimmed[:min(int(se.Offset), len(trimmed))], []byte("\n"))
				return spec, fmt.Errorf("invalid JSON: line %d: %v", line, se)
			case errors.Is(err, io.ErrUnexpectedEOF):
				return spec, errors.New("invalid JSON: the file ends in the middle of the object")
			}
			return spec, fmt.Errorf("invalid JSON: %s", cleanDecodeError(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return spec, errors.New("invalid JSON: unexpected data after the workload object; apply takes one workload per file")
		}
		return spec, nil
	}
	docs := 0
	for _, doc := range yamlDocSep.Split(string(data), -1) {
		if hasYAMLContent(doc) {
			docs++
		}
	}
	if docs == 0 {
		return spec, errEmpty
	}
	if docs > 1 {
		return spec, errors.New("the file holds several YAML documents; apply takes one workload per file")
	}
	if err := yaml.UnmarshalStrict(data, &spec); err != nil {
		return spec, fmt.Errorf("invalid YAML: %s", cleanDecodeError(err))
	}
	return spec, nil
}

// hasYAMLContent reports whether a YAML document has more than comments and
// blank lines.
func hasYAMLContent(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") && t != "..." {
			return true
		}
	}
	return false
}

// cleanDecodeError removes the layers of decoder prefixes from err and
// rephrases the common cases.
func cleanDecodeError(err error) string {
	msg := err.Error()
	for _, p := range []string{
		"error converting YAML to JSON: ",
		"error unmarshaling JSON: ",
		"while decoding JSON: ",
		"json: ",
		"yaml: ",
		"unmarshal errors:\n  ",
	} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	switch {
	case strings.HasPrefix(msg, "unknown field "):
		return msg + " (known fields: " + knownFields() + ")"
	case strings.Contains(msg, "into Go value of type api.WorkloadSpec"):
		return "the file must hold a single workload spec: a mapping of fields such as name, kind, cpus and memory"
	case strings.HasPrefix(msg, "size "):
		return `field "memory": ` + msg // from api.ByteSize
	}
	if m := goFieldType.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("field %q: expected %s, not %s", m[2], friendlyType(m[3]), friendlyKind(m[1]))
	}
	return msg
}

// goFieldType matches "cannot unmarshal string into Go struct field WorkloadSpec.cpus of type int".
var goFieldType = regexp.MustCompile(`cannot unmarshal (\w+) into Go struct field \w*\.(\S+) of type (\S+)`)

// friendlyKind names a JSON value kind as reported by encoding/json.
func friendlyKind(k string) string {
	switch k {
	case "string":
		return "text"
	case "number":
		return "a number"
	case "bool":
		return "true/false"
	case "array":
		return "a list"
	case "object":
		return "a mapping"
	}
	return k
}

func friendlyType(t string) string {
	switch {
	case strings.HasPrefix(t, "int"):
		return "a whole number"
	case t == "string", t == "api.Kind":
		return "text"
	case strings.HasPrefix(t, "map["):
		return "a mapping of key: value"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return t
}
