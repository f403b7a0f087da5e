package daemon

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
)

// BusyboxRef is the name BuildBusyboxArchive gives its image. The .test
// top-level domain cannot resolve, so a pull of it fails at once.
const BusyboxRef = "bulwark.test/busybox:latest"

// busyboxPaths are where Debian's busybox-static installs the binary.
var busyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// busyboxApplets are linked to /bin/busybox in the image.
var busyboxApplets = []string{"sh", "sleep", "echo", "cat", "httpd", "ls", "env", "hostname", "true", "false", "kill"}

// OCI media types and annotations (image-spec v1.1), spelled out so that
// the builder needs the standard library only.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
	// annotationImageName is containerd's name for the image an index
	// entry describes; Import names the image after it.
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// epoch is every file's modification time, so that the archive (and the
// image's digests) are the same on every build.
var epoch = time.Unix(1700000000, 0).UTC()

// WriteBusyboxArchive writes an OCI image archive (an OCI image layout in a
// tar: oci-layout, index.json and blobs/sha256/*) to path, holding one
// image, named BusyboxRef, whose single uncompressed layer is the host's
// static busybox as /bin/busybox plus applet symlinks (sh, sleep, echo, cat,
// httpd, ...). The image's default command is "sh" and its PATH is /bin.
// The build is pure Go and deterministic. It needs Debian's busybox-static.
func WriteBusyboxArchive(path string) (ref string, err error) {
	for _, p := range busyboxPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return BusyboxRef, writeBusyboxArchive(p, path, BusyboxRef)
		}
	}
	return "", ErrNoBusybox
}

// ErrNoBusybox: Debian's busybox-static is not installed.
var ErrNoBusybox = errors.New("busybox-static is not installed (no /bin/busybox)")

// writeBusyboxArchive builds the archive from the busybox binary at bin.
func writeBusyboxArchive(bin, path, ref string) error {
	busybox, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	layer, err := busyboxLayer(busybox)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	layerDesc := describe(mediaTypeLayer, layer)

	config, err := json.Marshal(map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Env":        []string{"PATH=/bin"},
			"Cmd":        []string{"sh"},
			"WorkingDir": "/",
		},
		"rootfs": map[string]any{
			"type": "layers",
			// The layer is uncompressed: its diff ID is its digest.
			"diff_ids": []string{layerDesc.Digest},
		},
	})
	if err != nil {
		return err
	}
	configDesc := describe(mediaTypeConfig, config)

	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        configDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc := describe(mediaTypeManifest, manifest)
	manifestDesc.Platform = &platform{Architecture: runtime.GOARCH, OS: "linux"}
	manifestDesc.Annotations = map[string]string{
		annotationImageName: ref,
		annotationRefName:   "latest",
	}

	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeIndex,
		"manifests":     []descriptor{manifestDesc},
	})
	if err != nil {
		return err
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(manifestDesc), manifest},
		{blobPath(configDesc), config},
		{blobPath(layerDesc), layer},
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, 0o644, f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// busyboxLayer is the image's root file system as an uncompressed tar.
func busyboxLayer(busybox []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []struct {
		name string
		mode int64
	}{
		{"bin/", 0o755}, {"dev/", 0o755}, {"etc/", 0o755}, {"proc/", 0o555},
		{"sys/", 0o555}, {"tmp/", 0o1777}, {"var/", 0o755}, {"www/", 0o755},
	}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := writeFile(tw, "bin/busybox", 0o755, busybox); err != nil {
		return nil, err
	}
	for _, a := range busyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	// A minimal passwd/group so that user lookups (and busybox's id) work.
	if err := writeFile(tw, "etc/passwd", 0o644, []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")); err != nil {
		return nil, err
	}
	if err := writeFile(tw, "etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func describe(mediaType string, data []byte) descriptor {
	sum := sha256.Sum256(data)
	return descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

func blobPath(d descriptor) string {
	return "blobs/sha256/" + d.Digest[len("sha256:"):]
}
