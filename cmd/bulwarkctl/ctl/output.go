package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// format is an output format selected with -o.
type format string

const (
	formatTable format = "table"
	formatJSON  format = "json"
	formatYAML  format = "yaml"
)

func parseFormat(s string) (format, error) {
	switch f := format(strings.ToLower(strings.TrimSpace(s))); f {
	case "", formatTable:
		return formatTable, nil
	case formatJSON:
		return formatJSON, nil
	case formatYAML, "yml":
		return formatYAML, nil
	}
	return "", fmt.Errorf("invalid output format %q: use -o table, -o json or -o yaml", s)
}

// printData writes v in a data format: indented JSON, or YAML with the
// same field names (the JSON is converted, so both say the same).
func printData(w io.Writer, f format, v any) error {
	if f == formatYAML {
		return printYAML(w, v)
	}
	return printJSON(w, v)
}

// print writes v in the session's data format (-o json or -o yaml).
func (s *session) print(v any) error { return printData(s.out, s.format, v) }

// printYAML writes v as YAML: its JSON encoding, converted.
func printYAML(w io.Writer, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding YAML output: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// printStreamed writes one item of a stream (events --follow, status
// --watch): a JSON object on one line, or a YAML document after "---".
func printStreamed(w io.Writer, f format, v any) error {
	if f == formatYAML {
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
		return printYAML(w, v)
	}
	return json.NewEncoder(w).Encode(v)
}

// printJSON writes v as indented JSON followed by a newline.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding JSON output: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// newTable returns a tabwriter for column output; call Flush when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
}

// row writes one tab-separated table row.
func row(w io.Writer, cols ...string) {
	fmt.Fprintln(w, strings.Join(cols, "\t"))
}

// truncate shortens s to at most n runes, ending it with "..." when cut.
// Newlines are folded so that a value stays on one table row.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	if n <= 3 {
		return string(r[:n])
	}
	return string(r[:n-3]) + "..."
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// joinMap renders a map as sorted k=v pairs.
func joinMap(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// usedOfTotal renders "used/total" for sizes, e.g. 1.5GiB/16GiB.
func usedOfTotal(used, total api.ByteSize) string {
	return used.Human() + "/" + total.Human()
}

// invalidInput formats local validation errors (possibly several, joined by
// errors.Join) as one error that says nothing was sent.
func invalidInput(what string, err error) error {
	errs := flatten(err)
	if len(errs) == 1 {
		return fmt.Errorf("invalid %s: %v (nothing was sent to the server)", what, errs[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s (nothing was sent to the server):", what)
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  - %v", e)
	}
	return errors.New(b.String())
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// explain turns an error from the API client into a message for the user.
// what and name identify the object the command was about (e.g. "workload",
// "web-1"); name may be empty for list commands.
func explain(err error, what, name string) error {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return err // unreachable-server errors already carry their hint
	}
	switch ae.Status {
	case http.StatusNotFound:
		if strings.HasPrefix(ae.Message, "no such endpoint") {
			// The server's catch-all route: it predates this request.
			return fmt.Errorf("the Bulwark API server does not offer this request; it is probably older than this bulwarkctl, upgrade it: %w", err)
		}
		if name != "" {
			return fmt.Errorf("%s %q not found (list them with: bulwarkctl %s list)", what, name, what)
		}
	case http.StatusServiceUnavailable:
		return fmt.Errorf("the Bulwark API server is unavailable, try again shortly: %w", err)
	case http.StatusBadRequest:
		return fmt.Errorf("the server rejected the request: %w", err)
	}
	return fmt.Errorf("the server answered with an error: %w", err)
}
