package daemon

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildBusyboxArchive(t *testing.T) {
	path, ref := BuildBusyboxArchive(t, "")
	if ref != BusyboxRef {
		t.Fatalf("ref %q", ref)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Deterministic: a second build is byte for byte the same.
	again, _ := BuildBusyboxArchive(t, t.TempDir())
	second, err := os.ReadFile(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("two builds differ")
	}

	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(first))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[hdr.Name] = b
	}
	for name, b := range files {
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hex != "" {
			if got := sha256hex(b); got != hex {
				t.Errorf("blob %s has digest %s", name, got)
			}
		}
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %s", files["oci-layout"])
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %s (%v)", files["index.json"], err)
	}
	m := index.Manifests[0]
	if m.Annotations[annotationImageName] != ref || m.MediaType != mediaTypeManifest {
		t.Errorf("index entry: %+v", m)
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(files[blobPath(m)], &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %s (%v)", files[blobPath(m)], err)
	}
	var config struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[blobPath(manifest.Config)], &config); err != nil {
		t.Fatal(err)
	}
	if len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Errorf("diff IDs %v, layer %s", config.RootFS.DiffIDs, manifest.Layers[0].Digest)
	}

	// The layer: busybox and its applet links.
	layer := map[string]*tar.Header{}
	lr := tar.NewReader(bytes.NewReader(files[blobPath(manifest.Layers[0])]))
	for {
		hdr, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		layer[hdr.Name] = hdr
	}
	if h := layer["bin/busybox"]; h == nil || h.Mode&0o111 == 0 {
		t.Errorf("bin/busybox: %+v", h)
	}
	for _, a := range []string{"sh", "sleep", "echo", "cat", "httpd"} {
		if h := layer[filepath.Join("bin", a)]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s: %+v", a, h)
		}
	}
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// BuildBusyboxArchive writes the archive into dir ("" : a temporary one).
func BuildBusyboxArchive(t *testing.T, dir string) (string, string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "busybox-oci.tar")
	ref, err := WriteBusyboxArchive(path)
	if errors.Is(err, ErrNoBusybox) {
		t.Skip("SKIP: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return path, ref
}
