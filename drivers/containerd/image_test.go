package containerd

import (
	"strings"
	"testing"
)

func TestParseImage(t *testing.T) {
	for _, tc := range []struct {
		in, archive, ref, err string
	}{
		{in: "busybox", ref: "docker.io/library/busybox:latest"},
		{in: "registry.example:5000/team/app:1.2", ref: "registry.example:5000/team/app:1.2"},
		{in: "bulwark.test/busybox:latest", ref: "bulwark.test/busybox:latest"},
		{in: "oci-archive:/srv/images/app.tar", archive: "/srv/images/app.tar"},
		{in: "oci-archive:/srv/images/../images/app.tar#app:2", archive: "/srv/images/app.tar", ref: "docker.io/library/app:2"},
		{in: "oci-archive:/srv/a#b.tar#bulwark.test/x:1", archive: "/srv/a#b.tar", ref: "bulwark.test/x:1"},
		{in: "", err: "no image given"},
		{in: "Busybox", err: `image reference "Busybox" cannot be parsed`},
		{in: "busybox:", err: "cannot be parsed"},
		{in: "oci-archive:relative.tar", err: "is not absolute"},
		{in: "oci-archive:/srv/app.tar#", err: "empty image name"},
		{in: "oci-archive:/srv/app.tar#bad ref", err: `image reference "bad ref" cannot be parsed`},
	} {
		src, err := parseImage(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if src.archive != tc.archive || src.ref != tc.ref {
			t.Errorf("%q: archive %q ref %q, want %q %q", tc.in, src.archive, src.ref, tc.archive, tc.ref)
		}
	}
}

func TestEnvList(t *testing.T) {
	got, err := envList(map[string]string{"B": "2", "A": "x=y"})
	if err != nil || strings.Join(got, " ") != "A=x=y B=2" {
		t.Fatalf("envList: %v %v", got, err)
	}
	for _, bad := range []map[string]string{{"": "v"}, {"A=B": "v"}, {"A": "v\x00"}} {
		if _, err := envList(bad); err == nil {
			t.Errorf("envList(%q) succeeded", bad)
		}
	}
}

func TestExitDetail(t *testing.T) {
	for code, want := range map[string]string{
		"0": "exit code 0", "3": "exit code 3", "137": "exit code 137 (SIGKILL)", "143": "exit code 143 (SIGTERM)",
	} {
		if got := exitDetail(code); got != want {
			t.Errorf("exitDetail(%s) = %q, want %q", code, got, want)
		}
	}
}
