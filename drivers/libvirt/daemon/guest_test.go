package daemon

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestVersionLess(t *testing.T) {
	got := []string{"vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64", "vmlinuz-6.10.0-1-amd64", "vmlinuz-5.10.0-28-amd64", "vmlinuz-6.1.0-10-amd64"}
	sort.Slice(got, func(i, j int) bool { return versionLess(got[i], got[j]) })
	want := []string{"vmlinuz-5.10.0-28-amd64", "vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "vmlinuz-6.1.0-56-amd64", "vmlinuz-6.10.0-1-amd64"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("sorted %v, want %v", got, want)
	}
}

func TestNewestKernel(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := newestKernel(dir); err == nil {
		t.Error("no kernel, no error")
	}
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-10-amd64"} {
		if err := os.WriteFile(filepath.Join(dir, "vmlinuz-"+v), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, v, err := newestKernel(dir)
	if err != nil || v != "6.1.0-10-amd64" || p != filepath.Join(dir, "vmlinuz-6.1.0-10-amd64") {
		t.Errorf("newestKernel = %s, %s, %v", p, v, err)
	}
}

func TestResolveModules(t *testing.T) {
	dir := t.TempDir()
	dep := `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
`
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/input/evdev.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := resolveModules(dir, []string{"virtio_blk", "virtio_net", "evdev"})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range got {
		pos[moduleName(m)] = i
	}
	if len(got) != 6 {
		t.Errorf("modules %v, want 6 (no duplicates, evdev built in)", got)
	}
	for _, before := range [][2]string{{"virtio_ring", "virtio"}, {"virtio", "virtio_blk"}, {"failover", "net_failover"}, {"net_failover", "virtio_net"}} {
		if pos[before[0]] >= pos[before[1]] {
			t.Errorf("%s is loaded after %s: %v", before[0], before[1], got)
		}
	}
	if _, err := resolveModules(dir, []string{"nosuch"}); err == nil {
		t.Error("an unknown module was resolved")
	}
}

// The initramfs must be a cpio archive that another implementation reads.
func TestCPIOWriter(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("SKIP: busybox is not installed to read the archive back")
	}
	var buf bytes.Buffer
	cw := &cpioWriter{w: &buf}
	cw.dir("bin")
	cw.node("dev/console", 0o020600, 5, 1)
	cw.file("init", 0o755, []byte("#!/bin/sh\necho hi\n"))
	cw.file("bin/odd", 0o644, []byte("12345"))
	if err := cw.close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	cmd := exec.Command(busybox, "cpio", "-t", "-v")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("busybox cpio -t: %v: %s", err, out)
	}
	for _, want := range []string{"drwxr-xr-x", " bin\n", "crw-------", "dev/console", "-rwxr-xr-x", "18 ", " init\n", "-rw-r--r--", "5 ", "bin/odd"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
}
