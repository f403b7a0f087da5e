package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadFile feeds arbitrary contents to the config file loader, as a
// server file, an agent file and through `bulwarkd config check` (CheckFile,
// with and without a kind). It never panics; what it refuses it explains
// (an *Error with at least one problem, every one with a message and the
// file as its origin). The files a configuration names (password, TLS) are
// not read: CheckFiles is not called. `go test` runs the committed seeds in
// testdata/fuzz/FuzzLoadFile; `make fuzz` explores further.
func FuzzLoadFile(f *testing.F) {
	path := filepath.Join(f.TempDir(), "bulwark.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		// One fuzz worker process calls this function sequentially, so one
		// file per process is enough.
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		check := func(what string, none bool, err error) {
			t.Helper()
			if err == nil {
				if none {
					t.Fatalf("%s: no config and no error", what)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				return // CheckFile's own argument errors are plain
			}
			if len(e.Problems) == 0 || e.Error() == "" {
				t.Fatalf("%s: an error without problems", what)
			}
			for _, p := range e.Problems {
				if p.Msg == "" {
					t.Fatalf("%s: a problem without a message: %+v", what, p)
				}
				if p.Origin.Source == FromFile && p.Origin.File != path {
					t.Fatalf("%s: problem in %q, not the file read: %+v", what, p.Origin.File, p)
				}
			}
		}
		in := Inputs{Path: path}
		s, err := LoadServer(in)
		check("LoadServer", s == nil, err)
		a, err := LoadAgent(in)
		check("LoadAgent", a == nil, err)
		for _, k := range []Kind{"", KindServer, KindAgent} {
			c, err := CheckFile(path, k)
			check("CheckFile "+string(k), c == nil, err)
		}
		if s != nil {
			_ = s.Fencing.Devices()
		}
	})
}
