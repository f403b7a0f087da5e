package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

// FuzzDecodeSpec feeds arbitrary bodies to the POST /v1/workloads decoder
// and validator. Neither may panic; a spec Validate accepts must survive a
// JSON round trip unchanged (up to empty-versus-absent lists and maps, which
// JSON does not tell apart) and be accepted again, and its memory size must
// survive String and ParseByteSize. `go test` runs the committed seeds in
// testdata/fuzz/FuzzDecodeSpec; `make fuzz` explores further.
func FuzzDecodeSpec(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := DecodeSpec(bytes.NewReader(body))
		if err != nil {
			return
		}
		if err := spec.Validate(); err != nil {
			if err.Error() == "" {
				t.Fatal("Validate returned an empty error")
			}
			return
		}
		if _, err := spec.ParsePlacement(); err != nil {
			t.Fatalf("Validate accepted a placement ParsePlacement refuses: %v", err)
		}
		if m, err := api.ParseByteSize(spec.Memory.String()); err != nil || m != spec.Memory {
			t.Fatalf("memory %d renders as %q, which parses to %d, %v", spec.Memory, spec.Memory.String(), m, err)
		}
		enc, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("marshal an accepted spec: %v", err)
		}
		back, err := DecodeSpec(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("an accepted spec re-encoded does not decode: %v\n%s", err, enc)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("an accepted spec re-encoded is refused: %v\n%s", err, enc)
		}
		if a, b := normalizeSpec(spec), normalizeSpec(back); !reflect.DeepEqual(a, b) {
			t.Fatalf("JSON round trip changed the spec:\n before %#v\n after  %#v\n via %s", a, b, enc)
		}
		enc2, err := json.Marshal(back)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// normalizeSpec makes empty lists and maps nil: omitempty drops them, so
// they come back absent.
func normalizeSpec(s api.WorkloadSpec) api.WorkloadSpec {
	if len(s.Labels) == 0 {
		s.Labels = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	if len(s.Require) == 0 {
		s.Require = nil
	}
	if len(s.Prefer) == 0 {
		s.Prefer = nil
	}
	if len(s.Command) == 0 {
		s.Command = nil
	}
	if len(s.Volumes) == 0 {
		s.Volumes = nil
	}
	if len(s.VIPs) == 0 {
		s.VIPs = nil
	}
	if len(s.Publish) == 0 {
		s.Publish = nil
	}
	if s.VM != nil {
		vm := *s.VM
		if len(vm.Disks) == 0 {
			vm.Disks = nil
		}
		if len(vm.Networks) == 0 {
			vm.Networks = nil
		}
		s.VM = &vm
	}
	return s
}
