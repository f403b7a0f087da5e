package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	good := map[string]ByteSize{
		"256MiB": 256 * MiB, "2GiB": 2 * GiB, "512Mi": 512 * MiB, "1G": GiB, "1.5GiB": 1536 * MiB,
		"1073741824": GiB, "64 MiB": 64 * MiB, "1TiB": TiB, "1KB": 1000, "2mb": 2000000, "4k": 4 * KiB,
	}
	for in, want := range good {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "MiB", "12XB", "1.5", "-1GiB", "1e3MiB", "99999999999TiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

func TestByteSizeStringRoundTrip(t *testing.T) {
	for _, v := range []ByteSize{0, 1, 1023, KiB, 256 * MiB, 1536 * MiB, 16 * GiB, 3 * TiB} {
		got, err := ParseByteSize(v.String())
		if err != nil || got != v {
			t.Errorf("round trip %d via %q: %d, %v", v, v.String(), got, err)
		}
		b, _ := json.Marshal(v)
		var back ByteSize
		if err := json.Unmarshal(b, &back); err != nil || back != v {
			t.Errorf("json round trip %d via %s: %d, %v", v, b, back, err)
		}
	}
	var n ByteSize
	if err := json.Unmarshal([]byte("268435456"), &n); err != nil || n != 256*MiB {
		t.Errorf("json number: %d, %v", n, err)
	}
	if got := (1536 * MiB).Human(); got != "1.5GiB" {
		t.Errorf("Human = %q", got)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "web1", "web-1", "0abc", strings.Repeat("a", 63)} {
		if err := ValidateName("workload", ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Web1", "web_1", "-web", "web-", "web.1", "wéb", "a b", strings.Repeat("a", 64), "../x"} {
		if err := ValidateName("workload", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWorkloadSpecValidate(t *testing.T) {
	base := func() WorkloadSpec {
		return WorkloadSpec{Name: "web1", Kind: KindVM, CPUs: 1, Memory: 256 * MiB}
	}
	if err := (&WorkloadSpec{Name: "c1", Kind: KindContainer, CPUs: 1, Memory: 64 * MiB, Image: "busybox"}).Validate(); err != nil {
		t.Fatalf("valid container rejected: %v", err)
	}
	s := base()
	if err := s.Validate(); err != nil {
		t.Fatalf("valid spec rejected: %v", err)
	}
	cases := map[string]func(*WorkloadSpec){
		"name":          func(s *WorkloadSpec) { s.Name = "Web_1" },
		"kind missing":  func(s *WorkloadSpec) { s.Kind = "" },
		"kind unknown":  func(s *WorkloadSpec) { s.Kind = "pod" },
		"cpus zero":     func(s *WorkloadSpec) { s.CPUs = 0 },
		"cpus negative": func(s *WorkloadSpec) { s.CPUs = -2 },
		"memory small":  func(s *WorkloadSpec) { s.Memory = 63 * MiB },
		"memory huge":   func(s *WorkloadSpec) { s.Memory = 65 * TiB },
		"priority high": func(s *WorkloadSpec) { s.Priority = 1001 },
		"priority neg":  func(s *WorkloadSpec) { s.Priority = -1 },
		"label key":     func(s *WorkloadSpec) { s.Labels = map[string]string{"": "x"} },
		"label value":   func(s *WorkloadSpec) { s.Labels = map[string]string{"k": "a b"} },
		"vm with image": func(s *WorkloadSpec) { s.Image = "busybox" },
		"container no image": func(s *WorkloadSpec) {
			s.Kind = KindContainer
		},
	}
	for name, mutate := range cases {
		s := base()
		mutate(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, s)
		}
	}
}

func TestParseLabel(t *testing.T) {
	if k, v, err := ParseLabel("rack=r1"); err != nil || k != "rack" || v != "r1" {
		t.Fatalf("ParseLabel: %q %q %v", k, v, err)
	}
	for _, bad := range []string{"rack", "=x", "k=a b"} {
		if _, _, err := ParseLabel(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
