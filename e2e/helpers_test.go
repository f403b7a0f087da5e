package e2e

import (
	"fmt"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/drivers/libvirt"
)

// startEmbeddedEtcd runs a real etcd member inside the test process; the
// daemons under test reach it over loopback like any external etcd.
func startEmbeddedEtcd(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	e, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{
		Dir:       t.TempDir(),
		Name:      "e2e",
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", port),
		// PeerURL left empty: picked free, retried if taken meanwhile.
	})
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Endpoints()[0]
}

func writeTestHost(t *testing.T, path string) {
	t.Helper()
	if err := libvirt.WriteTestHostXML(path, 8, 16*api.GiB); err != nil {
		t.Fatal(err)
	}
}
