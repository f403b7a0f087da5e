package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/storage"
)

// apiCall sends a JSON request to the API and decodes a JSON answer into
// out (if not nil); it returns the status and the raw body.
func apiCall(t *testing.T, method, url string, body, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
	return resp.StatusCode, string(b)
}

func revision(t *testing.T, apiURL string) int64 {
	t.Helper()
	h, err := health(apiURL)
	if err != nil {
		t.Fatal(err)
	}
	return h.Revision
}

func vmSpec(name string, vols ...string) api.WorkloadSpec {
	return api.WorkloadSpec{Name: name, Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB, Volumes: vols}
}

func makeDisk(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVolumeLocks: an exclusive volume goes to one workload at a time; the
// other waits with the holder named; bad input changes nothing; the lock
// moves to the new holder right after the old host's fence record.
func TestVolumeLocks(t *testing.T) {
	apiURL, _, dataDir := startDev(t, 3)
	storeDir := filepath.Join(dataDir, "shared-storage")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	disk := makeDisk(t, storeDir, "data.img")

	// Bad input: clear errors, nothing written.
	rev := revision(t, apiURL)
	for _, c := range []struct {
		spec api.VolumeSpec
		want string
	}{
		{api.VolumeSpec{Name: "gone", Path: filepath.Join(storeDir, "nope.img")}, "does not exist"},
		{api.VolumeSpec{Name: "dir", Path: storeDir}, "is a directory"},
		{api.VolumeSpec{Name: "Bad_Name", Path: disk}, "volume"},
		{api.VolumeSpec{Name: "rel", Path: "data.img"}, "not absolute"},
		{api.VolumeSpec{Name: "m", Path: disk, Mode: "sometimes"}, "mode"},
	} {
		code, body := apiCall(t, http.MethodPost, apiURL+"/v1/volumes", c.spec, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("volume %+v: HTTP %d %s (want 400 with %q)", c.spec, code, body, c.want)
		}
	}
	if r := revision(t, apiURL); r != rev {
		t.Fatalf("bad volume specs changed the store: revision %d -> %d", rev, r)
	}

	var vol api.VolumeView
	if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/volumes", api.VolumeSpec{Name: "data", Path: disk}, &vol); code != http.StatusCreated {
		t.Fatalf("create volume: %d %s", code, body)
	}
	if vol.LeasePath != disk+api.LeaseSuffix || vol.Mode != api.VolumeExclusive {
		t.Fatalf("volume defaults: %+v", vol)
	}
	rev = revision(t, apiURL)
	for _, c := range []struct {
		spec api.WorkloadSpec
		code int
		want string
	}{
		{vmSpec("twice", "data", "data"), 400, "attached twice"},
		{vmSpec("ghost", "nope"), 400, "volume nope does not exist"},
	} {
		if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/workloads", c.spec, nil); code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("workload %s: HTTP %d %s", c.spec.Name, code, body)
		}
	}
	if r := revision(t, apiURL); r != rev {
		t.Fatalf("bad workloads changed the store: revision %d -> %d", rev, r)
	}

	if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/workloads", vmSpec("a", "data"), nil); code != http.StatusCreated {
		t.Fatalf("create a: %d %s", code, body)
	}
	var a api.WorkloadView
	eventually(t, "a running", 15*time.Second, func() bool {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/a", nil, &a)
		return a.State == api.StateRunning
	})
	if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/workloads", vmSpec("b", "data"), nil); code != http.StatusCreated {
		t.Fatalf("create b: %d %s", code, body)
	}
	var b api.WorkloadView
	want := "volume data held by a on " + a.Host
	eventually(t, "b pending on the volume", 10*time.Second, func() bool {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/b", nil, &b)
		return b.State == api.StatePending && b.Reason == want
	})
	apiCall(t, http.MethodGet, apiURL+"/v1/volumes/data", nil, &vol)
	if vol.Holder == nil || vol.Holder.Workload != "a" || vol.Holder.Host != a.Host || vol.Holder.Epoch != a.Epoch {
		t.Fatalf("volume holder %+v, want a on %s at epoch %d", vol.Holder, a.Host, a.Epoch)
	}
	l, ok, err := storage.ReadLease(vol.LeasePath)
	if err != nil || !ok || l.Epoch != a.Epoch || l.Host != a.Host || l.Workload != "a" || l.Released {
		t.Fatalf("on-storage lease %+v %v %v", l, ok, err)
	}
	if code, body := apiCall(t, http.MethodDelete, apiURL+"/v1/volumes/data", nil, nil); code != http.StatusConflict || !strings.Contains(body, "held by a") {
		t.Fatalf("delete held volume: %d %s", code, body)
	}

	// The holder's host crashes and is fenced: a restarts elsewhere, and
	// the lock follows right after the fence record.
	old := a
	devFault(t, apiURL, old.Host, "crash")
	eventually(t, "a running elsewhere", 40*time.Second, func() bool {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/a", nil, &a)
		return a.State == api.StateRunning && a.Host != old.Host
	})
	if a.Epoch <= old.Epoch {
		t.Fatalf("epoch %d not above %d", a.Epoch, old.Epoch)
	}
	apiCall(t, http.MethodGet, apiURL+"/v1/volumes/data", nil, &vol)
	if vol.Holder == nil || vol.Holder.Host != a.Host || vol.Holder.Epoch != a.Epoch {
		t.Fatalf("volume holder after failover %+v, want %s at %d", vol.Holder, a.Host, a.Epoch)
	}
	var events []api.Event
	apiCall(t, http.MethodGet, apiURL+"/v1/events?host="+old.Host, nil, &events)
	var fenced time.Time
	for _, e := range events {
		if e.Type == "fenced" {
			fenced = e.Time
		}
	}
	if fenced.IsZero() {
		t.Fatalf("no fence event for %s: %+v", old.Host, events)
	}
	t.Logf("volume lock moved %s -> %s: fence record %s, new holder locked it %s later (epoch %d -> %d)",
		old.Host, a.Host, fenced.Format(time.RFC3339Nano), vol.Holder.Since.Sub(fenced).Round(time.Millisecond), old.Epoch, a.Epoch)
	if vol.Holder.Since.Before(fenced) {
		t.Fatalf("new holder locked the volume at %s, before the fence record at %s", vol.Holder.Since, fenced)
	}
	if l, _, _ := storage.ReadLease(vol.LeasePath); l.Epoch != a.Epoch || l.Host != a.Host {
		t.Fatalf("on-storage lease after failover: %+v", l)
	}
	// b still waits, now on the new holder.
	eventually(t, "b waits on the new holder", 10*time.Second, func() bool {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/b", nil, &b)
		return b.State == api.StatePending && b.Reason == "volume data held by a on "+a.Host
	})

	// Delete a: the lock is released once it has stopped, and b gets it.
	apiCall(t, http.MethodDelete, apiURL+"/v1/workloads/a", nil, nil)
	eventually(t, "b running with the volume", 20*time.Second, func() bool {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/b", nil, &b)
		return b.State == api.StateRunning
	})
	apiCall(t, http.MethodGet, apiURL+"/v1/volumes/data", nil, &vol)
	if vol.Holder == nil || vol.Holder.Workload != "b" || vol.Holder.Epoch != b.Epoch {
		t.Fatalf("holder after a deleted: %+v", vol.Holder)
	}
	apiCall(t, http.MethodDelete, apiURL+"/v1/workloads/b", nil, nil)
	eventually(t, "volume free and deletable", 20*time.Second, func() bool {
		code, _ := apiCall(t, http.MethodDelete, apiURL+"/v1/volumes/data", nil, nil)
		return code == http.StatusNoContent
	})
	if l, _, _ := storage.ReadLease(disk + api.LeaseSuffix); !l.Released || l.Epoch != b.Epoch {
		t.Fatalf("lease after release: %+v", l)
	}
}

// TestVolumeStaleHolder: a host is frozen, declared off by an operator, and
// its workload restarts elsewhere under a newer epoch; when the frozen agent
// resumes it must not touch the volume's lease, and its copy stops.
func TestVolumeStaleHolder(t *testing.T) {
	apiURL, _, dataDir := startDev(t, 3)
	disk := makeDisk(t, dataDir, "data.img")
	if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/volumes", api.VolumeSpec{Name: "data", Path: disk}, nil); code != http.StatusCreated {
		t.Fatalf("create volume: %d %s", code, body)
	}
	if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/workloads", vmSpec("db", "data"), nil); code != http.StatusCreated {
		t.Fatalf("create db: %d %s", code, body)
	}
	var w api.WorkloadView
	eventually(t, "db running", 15*time.Second, func() bool {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/db", nil, &w)
		return w.State == api.StateRunning
	})
	stale := w
	// Freeze the host's agent (its simulated VM with it) and make its BMC
	// unreachable, so the cluster cannot power it off; then an operator
	// declares it off.
	devFault(t, apiURL, stale.Host, "bmc-down")
	devFault(t, apiURL, stale.Host, "hang")
	eventually(t, "operator confirms the host off", 30*time.Second, func() bool {
		code, _ := apiCall(t, http.MethodPost, apiURL+"/v1/nodes/"+stale.Host+"/fence?confirm-off=true", nil, nil)
		return code < 300
	})
	eventually(t, "db running elsewhere", 30*time.Second, func() bool {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/db", nil, &w)
		return w.State == api.StateRunning && w.Host != stale.Host
	})
	lease := disk + api.LeaseSuffix
	l, _, err := storage.ReadLease(lease)
	if err != nil || l.Epoch != w.Epoch || l.Host != w.Host {
		t.Fatalf("lease before resume: %+v %v (want %s at %d)", l, err, w.Host, w.Epoch)
	}
	before, _ := os.ReadFile(lease)

	// Resume the stale agent: it still believes it runs db at the old epoch.
	devFault(t, apiURL, stale.Host, "heal")
	eventually(t, "the stale copy is stopped", 20*time.Second, func() bool {
		resp, err := http.Get(apiURL + "/v1/nodes/" + stale.Host + "/tasks")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var tasks []api.Task
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tasks) != nil {
			return false
		}
		for _, tk := range tasks {
			if tk.Workload == "db" {
				return false
			}
		}
		return true
	})
	// A few lease renewals later the lease is still the new holder's:
	// the stale agent never wrote its old epoch over it.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		l, _, err := storage.ReadLease(lease)
		if err != nil || l.Epoch != w.Epoch || l.Host != w.Host {
			t.Fatalf("lease after the stale agent resumed: %+v %v (want %s at %d)", l, err, w.Host, w.Epoch)
		}
		time.Sleep(200 * time.Millisecond)
	}
	after, _ := os.ReadFile(lease)
	t.Logf("stale holder %s (epoch %d) stopped its copy; lease stayed with %s at epoch %d (%d bytes, renewed by its holder: %v)",
		stale.Host, stale.Epoch, w.Host, w.Epoch, len(after), !bytes.Equal(before, after))
	log, _ := os.ReadFile(filepath.Join(dataDir, "hosts", stale.Host, "agent.log"))
	switch {
	case strings.Contains(string(log), "VOLUME SUPERSEDED"):
		t.Logf("%s stopped its copy on seeing the newer epoch in the on-storage lease", stale.Host)
	case strings.Contains(string(log), "SELF-FENCING"):
		t.Logf("%s stopped its copy by self-fencing (its lease expired while frozen)", stale.Host)
	default:
		t.Errorf("no record of how %s stopped its copy in its log", stale.Host)
	}
}
