package etcd

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A dev cluster restarted on its data dir gets a new free peer port; the
// single member must come back with its data.
func TestEmbeddedRestartsWithNewPeerPort(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		e, err := StartEmbedded(EmbeddedConfig{Dir: dir})
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second})
		if err != nil {
			e.Close()
			t.Fatal(err)
		}
		if i == 0 {
			_, err = cli.Put(ctx, "k", "v")
		} else {
			var resp *clientv3.GetResponse
			if resp, err = cli.Get(ctx, "k"); err == nil && (len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v") {
				t.Errorf("after restart on a new peer port: %v", resp.Kvs)
			}
		}
		cli.Close()
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}
