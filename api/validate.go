package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Limits enforced at the API.
const (
	MinMemory   = 64 * MiB
	MaxCPUs     = 4096
	MaxMemory   = 64 * TiB
	MaxPriority = 1000
	MaxLabels   = 64
)

// ByteSize is a size in bytes. In JSON it is written as a string such as
// "256MiB" and read from such a string or from a plain number of bytes.
type ByteSize int64

const (
	B   ByteSize = 1
	KiB          = 1024 * B
	MiB          = 1024 * KiB
	GiB          = 1024 * MiB
	TiB          = 1024 * GiB
)

var sizeUnits = map[string]ByteSize{
	"": B, "b": B,
	"k": KiB, "ki": KiB, "kib": KiB, "kb": 1000,
	"m": MiB, "mi": MiB, "mib": MiB, "mb": 1000 * 1000,
	"g": GiB, "gi": GiB, "gib": GiB, "gb": 1000 * 1000 * 1000,
	"t": TiB, "ti": TiB, "tib": TiB, "tb": 1000 * 1000 * 1000 * 1000,
}

// ParseByteSize reads sizes like "256MiB", "2GiB", "512Mi", "1.5G", "1073741824".
// K/M/G/T and Ki/Mi/KiB... are binary (powers of 1024); KB/MB/GB/TB are decimal.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("size %q: empty", s)
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q: must start with a number, e.g. 256MiB or 2GiB", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %q is not a number", s, num)
	}
	v := f * float64(mult)
	if v > float64(math.MaxInt64/2) {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("size %q: not a whole number of bytes", s)
	}
	return ByteSize(v), nil
}

// String renders the size in the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	for _, u := range []struct {
		n string
		v ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if b != 0 && b%u.v == 0 {
			return fmt.Sprintf("%d%s", b/u.v, u.n)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// Human renders the size rounded to one decimal for tables.
func (b ByteSize) Human() string {
	switch {
	case b >= TiB:
		return trimZero(float64(b)/float64(TiB)) + "TiB"
	case b >= GiB:
		return trimZero(float64(b)/float64(GiB)) + "GiB"
	case b >= MiB:
		return trimZero(float64(b)/float64(MiB)) + "MiB"
	case b >= KiB:
		return trimZero(float64(b)/float64(KiB)) + "KiB"
	}
	return fmt.Sprintf("%dB", int64(b))
}

func trimZero(f float64) string {
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0")
}

func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

func (b *ByteSize) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		*b = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("size must be a string like \"256MiB\" or a whole number of bytes")
	}
	*b = ByteSize(n)
	return nil
}

// ValidateName checks that s is a DNS-1123 label: lowercase letters, digits
// and '-', starting and ending with a letter or digit, at most 63 characters.
func ValidateName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s name is empty", what)
	}
	if len(s) > 63 {
		return fmt.Errorf("%s name %q is %d characters long; at most 63 are allowed", what, s, len(s))
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i != 0 && i != len(s)-1
		if !ok {
			return fmt.Errorf("%s name %q is not a DNS label: use lowercase letters, digits and '-', starting and ending with a letter or digit", what, s)
		}
	}
	return nil
}

// ValidateLabels checks label keys and values: keys are 1-63 characters of
// letters, digits, '-', '_', '.' and '/'; values at most 63 of the same minus '/'.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("%d labels; at most %d are allowed", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > 63 || !labelChars(k, true) {
			return fmt.Errorf("label key %q: use 1-63 letters, digits, '-', '_', '.' or '/'", k)
		}
		if len(v) > 63 || !labelChars(v, false) {
			return fmt.Errorf("label %s=%q: the value may have at most 63 letters, digits, '-', '_' or '.'", k, v)
		}
	}
	return nil
}

func labelChars(s string, slash bool) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		case c == '/' && slash:
		default:
			return false
		}
	}
	return true
}

// ParseLabel reads "key=value".
func ParseLabel(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("label %q: expected key=value", s)
	}
	if err := ValidateLabels(map[string]string{k: v}); err != nil {
		return "", "", err
	}
	return k, v, nil
}

// Validate checks a workload spec and returns every problem found, joined.
func (s *WorkloadSpec) Validate() error {
	var errs []error
	if err := ValidateName("workload", s.Name); err != nil {
		errs = append(errs, err)
	}
	switch s.Kind {
	case KindVM:
		if s.Image != "" || len(s.Command) > 0 || len(s.Env) > 0 {
			errs = append(errs, errors.New("image, command and env are for containers, not VMs"))
		}
		if err := s.VM.Validate(); err != nil {
			errs = append(errs, err)
		}
	case KindContainer:
		if s.VM != nil {
			errs = append(errs, errors.New("vm settings (disks, kernel, networks) are for VMs, not containers"))
		}
		if s.Image == "" {
			errs = append(errs, errors.New("a container needs an image"))
		}
	case "":
		errs = append(errs, errors.New("kind is missing: use \"vm\" or \"container\""))
	default:
		errs = append(errs, fmt.Errorf("kind %q is unknown: use \"vm\" or \"container\"", s.Kind))
	}
	if s.CPUs < 1 || s.CPUs > MaxCPUs {
		errs = append(errs, fmt.Errorf("cpus must be a whole number from 1 to %d, got %d", MaxCPUs, s.CPUs))
	}
	if s.Memory < MinMemory {
		errs = append(errs, fmt.Errorf("memory must be at least %s, got %s", MinMemory, s.Memory))
	} else if s.Memory > MaxMemory {
		errs = append(errs, fmt.Errorf("memory must be at most %s, got %s", MaxMemory, s.Memory))
	}
	switch s.Restart {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		errs = append(errs, fmt.Errorf("restart policy %q is unknown: use always, on-failure or never", s.Restart))
	}
	if s.Priority < 0 || s.Priority > MaxPriority {
		errs = append(errs, fmt.Errorf("priority must be from 0 to %d, got %d", MaxPriority, s.Priority))
	}
	if err := ValidateLabels(s.Labels); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.ParsePlacement(); err != nil {
		errs = append(errs, err)
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, fmt.Errorf("env name %q is invalid", k))
		}
	}
	errs = append(errs, s.validateShared()...)
	errs = append(errs, s.validateCheck()...)
	return errors.Join(errs...)
}

// validateShared checks volumes, floating IPs and published ports.
func (s *WorkloadSpec) validateShared() []error {
	var errs []error
	seen := map[string]bool{}
	for _, v := range s.Volumes {
		if err := ValidateName("volume", v); err != nil {
			errs = append(errs, err)
		} else if seen[v] {
			errs = append(errs, fmt.Errorf("volume %s is attached twice", v))
		}
		seen[v] = true
	}
	vips := map[string]bool{}
	for _, v := range s.VIPs {
		a, err := netip.ParseAddr(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("vip %q is not an IP address (give the address alone, e.g. 192.0.2.10)", v))
		case vips[a.String()]:
			errs = append(errs, fmt.Errorf("vip %s is attached twice", v))
		}
		if err == nil {
			vips[a.String()] = true
		}
	}
	if len(s.Publish) > 0 && s.Kind != KindContainer {
		errs = append(errs, errors.New("published ports are for containers"))
	}
	ports := map[string]bool{}
	for i := range s.Publish {
		p := &s.Publish[i]
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		a, _ := netip.ParseAddr(p.VIP)
		if !vips[a.String()] {
			errs = append(errs, fmt.Errorf("publish %s:%d: %s is not one of the workload's floating IPs (add --vip %s)", p.VIP, p.Port, p.VIP, p.VIP))
		}
		k := fmt.Sprintf("%s/%d/%s", a, p.Port, orTCP(p.Proto))
		if ports[k] {
			errs = append(errs, fmt.Errorf("publish %s:%d/%s twice", p.VIP, p.Port, orTCP(p.Proto)))
		}
		ports[k] = true
	}
	return errs
}

func orTCP(p string) string {
	if p == "" {
		return "tcp"
	}
	return p
}

// Validate checks a node registration.
func (n *Node) Validate() error {
	var errs []error
	if err := ValidateName("node", n.Name); err != nil {
		errs = append(errs, err)
	}
	if n.CPUs < 1 {
		errs = append(errs, fmt.Errorf("node cpus must be at least 1, got %d", n.CPUs))
	}
	if n.Memory < MinMemory {
		errs = append(errs, fmt.Errorf("node memory must be at least %s, got %s", MinMemory, n.Memory))
	}
	if err := ValidateLabels(n.Labels); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
