package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for what users type: sizes, placement expressions, volume,
// floating-IP and publish specs. `go test` runs the committed seeds in
// testdata/fuzz/; `make fuzz` explores further.

// FuzzParseByteSize: ParseByteSize never panics, never returns a negative
// size, and every size it accepts survives String and JSON unchanged.
func FuzzParseByteSize(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseByteSize(%q) = %d: negative", s, v)
		}
		back, err := ParseByteSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseByteSize(%q) = %d; its String %q parses to %d, %v", s, v, v.String(), back, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %d: %v", v, err)
		}
		var j ByteSize
		if err := json.Unmarshal(b, &j); err != nil || j != v {
			t.Fatalf("JSON round trip of %d via %s: %d, %v", v, b, j, err)
		}
		_ = v.Human()
	})
}

// FuzzPlacement: ParsePlacement never panics on any require/prefer list
// (one expression a line), anti-affinity group and spread-by key; what it
// accepts renders (String) to expressions that parse back to the same
// placement, and each constraint holds for a host that has the label value
// it names exactly when the operator says so.
func FuzzPlacement(f *testing.F) {
	f.Fuzz(func(t *testing.T, require, prefer, anti, spread string) {
		spec := WorkloadSpec{Require: lines(require), Prefer: lines(prefer), AntiAffinity: anti, SpreadBy: spread}
		p, err := spec.ParsePlacement()
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		again := WorkloadSpec{AntiAffinity: p.AntiAffinity, SpreadBy: p.SpreadBy}
		for _, c := range p.Require {
			r := c.String()
			back, err := ParseConstraint(r)
			if err != nil || !reflect.DeepEqual(back, c) {
				t.Fatalf("constraint %+v renders as %q, which parses to %+v, %v", c, r, back, err)
			}
			again.Require = append(again.Require, r)
			has := map[string]string{c.Key: c.Values[0]}
			want := c.Op == OpEq || c.Op == OpIn
			if got := c.Matches(has); got != want {
				t.Fatalf("%q matches %v: %v, want %v", r, has, got, want)
			}
		}
		for _, pr := range p.Prefer {
			r := pr.String()
			back, err := ParsePreference(r)
			if err != nil || back != pr {
				t.Fatalf("preference %+v renders as %q, which parses to %+v, %v", pr, r, back, err)
			}
			again.Prefer = append(again.Prefer, r)
		}
		p2, err := again.ParsePlacement()
		if err != nil || !reflect.DeepEqual(p2, p) {
			t.Fatalf("placement %+v re-rendered as %+v parses to %+v, %v", p, again, p2, err)
		}
	})
}

// lines splits fuzz input into a list; "" is no list at all.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// FuzzParseVIPPrefix: the floating-IP parser and VIPSpec.Validate never
// panic; an accepted address keeps its host bits, is never one that cannot
// float, and its String parses back to the same prefix.
func FuzzParseVIPPrefix(f *testing.F) {
	f.Fuzz(func(t *testing.T, addr, iface, network, workload string) {
		spec := VIPSpec{Address: addr, Interface: iface, Network: network, Workload: workload}
		specErr := spec.Validate()
		p, err := ParseVIPPrefix(addr)
		if err != nil {
			if specErr == nil {
				t.Fatalf("VIPSpec %+v accepted with an address ParseVIPPrefix refuses: %v", spec, err)
			}
			return
		}
		a := p.Addr()
		if !p.IsValid() || a.Zone() != "" || a.IsLoopback() || a.IsMulticast() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.Is4In6() {
			t.Fatalf("ParseVIPPrefix(%q) accepted %s", addr, p)
		}
		if a.Is4() && p.Bits() < 31 && (a == p.Masked().Addr() || a == lastAddr(p)) {
			t.Fatalf("ParseVIPPrefix(%q) accepted the network or broadcast address %s", addr, p)
		}
		back, err := ParseVIPPrefix(p.String())
		if err != nil || back != p {
			t.Fatalf("ParseVIPPrefix(%q) = %s, which parses to %s, %v", addr, p, back, err)
		}
		if specErr == nil && VIPKeyName(p) != a.String() {
			t.Fatalf("key name %q", VIPKeyName(p))
		}
	})
}

// FuzzParsePublish: ParsePublish never panics; what it accepts is valid and
// its canonical rendering parses back to the same port forward.
func FuzzParsePublish(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublish(s)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePublish(%q) = %+v, which Validate refuses: %v", s, p, err)
		}
		r := renderPublish(p)
		back, err := ParsePublish(r)
		if err != nil || back != p {
			t.Fatalf("ParsePublish(%q) = %+v renders as %q, which parses to %+v, %v", s, p, r, back, err)
		}
	})
}

func renderPublish(p Publish) string {
	host := p.VIP
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	s := host + ":" + itoa(p.Port) + ":" + itoa(p.ContainerPort)
	if p.Proto != "" {
		s += "/" + p.Proto
	}
	return s
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// FuzzVolumeSpec: Normalize and Validate never panic; Normalize is
// idempotent; an accepted spec survives JSON unchanged and is accepted again.
func FuzzVolumeSpec(f *testing.F) {
	f.Fuzz(func(t *testing.T, name, path, mode, lease, format string) {
		v := VolumeSpec{Name: name, Path: path, Mode: VolumeMode(mode), LeasePath: lease, Format: format}
		v.Normalize()
		n := v
		n.Normalize()
		if n != v {
			t.Fatalf("Normalize is not idempotent: %+v then %+v", v, n)
		}
		if err := v.Validate(); err != nil {
			return
		}
		// JSON (the API's only way in) cannot carry invalid UTF-8.
		if !utf8.ValidString(v.Path) || !utf8.ValidString(v.LeasePath) {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var back VolumeSpec
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&back); err != nil || back != v {
			t.Fatalf("JSON round trip of %+v via %s: %+v, %v", v, b, back, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("accepted %+v, refused after JSON: %v", v, err)
		}
	})
}
