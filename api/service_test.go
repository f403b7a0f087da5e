package api

import (
	"strings"
	"testing"
)

func validService() ServiceSpec {
	return ServiceSpec{Name: "web", Replicas: 3, Template: WorkloadSpec{Kind: KindContainer, Image: "busybox:1.36", CPUs: 1, Memory: 128 * MiB}}
}

func TestServiceValidate(t *testing.T) {
	long := strings.Repeat("a", MaxServiceName+1)
	cases := []struct {
		name   string
		change func(*ServiceSpec)
		want   string // "" = valid
	}{
		{"valid", func(*ServiceSpec) {}, ""},
		{"zero replicas", func(s *ServiceSpec) { s.Replicas = 0 }, ""},
		{"max replicas", func(s *ServiceSpec) { s.Replicas = MaxReplicas }, ""},
		{"no spread", func(s *ServiceSpec) { s.AntiAffinity = AntiAffinityNone }, ""},
		{"vm", func(s *ServiceSpec) { s.Template = WorkloadSpec{Kind: KindVM, CPUs: 1, Memory: 256 * MiB} }, ""},
		{"negative replicas", func(s *ServiceSpec) { s.Replicas = -1 }, "replicas must be from 0 to 100, got -1"},
		{"too many replicas", func(s *ServiceSpec) { s.Replicas = MaxReplicas + 1 }, "replicas must be from 0 to 100, got 101"},
		{"empty name", func(s *ServiceSpec) { s.Name = "" }, "service name is empty"},
		{"bad name", func(s *ServiceSpec) { s.Name = "Web_1" }, "is not a DNS label"},
		{"long name", func(s *ServiceSpec) { s.Name = long }, "at most 59 are allowed"},
		{"bad anti-affinity", func(s *ServiceSpec) { s.AntiAffinity = "soft" }, `anti-affinity "soft" is unknown`},
		{"template name", func(s *ServiceSpec) { s.Template.Name = "web-1" }, "the template has a name"},
		{"template group", func(s *ServiceSpec) { s.Template.AntiAffinity = "g" }, "anti_affinity must be empty"},
		{"template label", func(s *ServiceSpec) { s.Template.Labels = map[string]string{ServiceLabel: "x"} }, "may not set the label"},
		{"template vip", func(s *ServiceSpec) { s.Template.VIPs = []string{"192.0.2.1"} }, "floating IPs"},
		{"template volume", func(s *ServiceSpec) { s.Template.Volumes = []string{"v"} }, "volumes are not supported"},
		{"template cpus", func(s *ServiceSpec) { s.Template.CPUs = 0 }, "template: cpus must be a whole number"},
		{"template kind", func(s *ServiceSpec) { s.Template.Kind = "" }, "template: kind is missing"},
		{"template no image", func(s *ServiceSpec) { s.Template.Image = "" }, "template: a container needs an image"},
		{"spread without group", func(s *ServiceSpec) { s.AntiAffinity = AntiAffinityNone; s.Template.SpreadBy = "rack" }, "spread_by needs anti-affinity auto"},
		{"vip", func(s *ServiceSpec) { s.VIP, s.Ports = "192.0.2.80", []ServicePort{{Port: 80, TargetPort: 8080}} }, ""},
		{"vip v6", func(s *ServiceSpec) {
			s.VIP, s.Ports = "2001:db8::80", []ServicePort{{Port: 53, TargetPort: 5353, Proto: "udp"}}
		}, ""},
		{"vip without ports", func(s *ServiceSpec) { s.VIP = "192.0.2.80" }, "has no ports"},
		{"ports without vip", func(s *ServiceSpec) { s.Ports = []ServicePort{{Port: 80, TargetPort: 8080}} }, "ports need a vip"},
		{"vip not an address", func(s *ServiceSpec) { s.VIP, s.Ports = "192.0.2.80/24", []ServicePort{{Port: 80, TargetPort: 80}} }, "is not an IP address"},
		{"port zero", func(s *ServiceSpec) { s.VIP, s.Ports = "192.0.2.80", []ServicePort{{Port: 0, TargetPort: 80}} }, "ports must be from 1 to 65535"},
		{"port too big", func(s *ServiceSpec) { s.VIP, s.Ports = "192.0.2.80", []ServicePort{{Port: 80, TargetPort: 65536}} }, "ports must be from 1 to 65535"},
		{"port proto", func(s *ServiceSpec) {
			s.VIP, s.Ports = "192.0.2.80", []ServicePort{{Port: 80, TargetPort: 80, Proto: "sctp"}}
		}, `protocol "sctp" is unknown`},
		{"port twice", func(s *ServiceSpec) {
			s.VIP, s.Ports = "192.0.2.80", []ServicePort{{Port: 80, TargetPort: 80}, {Port: 80, TargetPort: 81, Proto: "tcp"}}
		}, "port 80/tcp is given twice"},
		{"vip without spread", func(s *ServiceSpec) {
			s.AntiAffinity, s.VIP, s.Ports = AntiAffinityNone, "192.0.2.80", []ServicePort{{Port: 80, TargetPort: 80}}
		}, "needs anti-affinity auto"},
		{"vip on vms", func(s *ServiceSpec) {
			s.Template = WorkloadSpec{Kind: KindVM, CPUs: 1, Memory: 256 * MiB}
			s.VIP, s.Ports = "192.0.2.80", []ServicePort{{Port: 80, TargetPort: 80}}
		}, "for container services"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validService()
			c.change(&s)
			s.Normalize()
			err := s.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestServiceMember(t *testing.T) {
	s := validService()
	s.Template.Labels = map[string]string{"tier": "web"}
	s.Normalize()
	m := s.Member(12)
	if m.Name != "web-12" || m.AntiAffinity != "svc-web" || m.Labels[ServiceLabel] != "web" || m.Labels["tier"] != "web" {
		t.Fatalf("member %+v", m)
	}
	if _, ok := s.Template.Labels[ServiceLabel]; ok {
		t.Fatal("Member changed the template's labels")
	}
	if n, ok := MemberIndex("web", &m); !ok || n != 12 {
		t.Fatalf("MemberIndex = %d, %v", n, ok)
	}
	for _, name := range []string{"web-0", "web-01", "web-x", "web-", "webx-1", "web-1-2"} {
		w := WorkloadSpec{Name: name, Labels: map[string]string{ServiceLabel: "web"}}
		if _, ok := MemberIndex("web", &w); ok {
			t.Errorf("%s counted as a member", name)
		}
	}
	w := WorkloadSpec{Name: "web-1"}
	if _, ok := MemberIndex("web", &w); ok {
		t.Error("an unlabelled web-1 counted as a member")
	}
	s.AntiAffinity = AntiAffinityNone
	if m := s.Member(1); m.AntiAffinity != "" {
		t.Fatalf("anti-affinity none gave group %q", m.AntiAffinity)
	}
	long := validService()
	long.Name = strings.Repeat("a", MaxServiceName)
	long.Normalize()
	m = long.Member(MaxMemberIndex)
	if err := ValidateName("workload", m.Name); err != nil {
		t.Fatal(err)
	}
}

func TestParseServicePort(t *testing.T) {
	good := map[string]ServicePort{
		"80:8080":     {Port: 80, TargetPort: 8080, Proto: "tcp"},
		"80":          {Port: 80, TargetPort: 80, Proto: "tcp"},
		"53:5353/udp": {Port: 53, TargetPort: 5353, Proto: "udp"},
		"443:443/tcp": {Port: 443, TargetPort: 443, Proto: "tcp"},
	}
	for in, want := range good {
		got, err := ParseServicePort(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":           "use PORT:TARGETPORT",
		"http":       "use PORT:TARGETPORT",
		"80:":        "use PORT:TARGETPORT",
		"0:80":       "ports must be from 1 to 65535",
		"80:70000":   "ports must be from 1 to 65535",
		"80:80/sctp": `protocol "sctp" is unknown`,
		"-1:80":      "ports must be from 1 to 65535",
	}
	for in, want := range bad {
		if _, err := ParseServicePort(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
