package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/drivers"
)

func grace(d time.Duration) *api.Duration {
	g := api.Duration(d)
	return &g
}

// TestHealthState drives the state machine through scripted checks.
func TestHealthState(t *testing.T) {
	fail := errors.New("connection refused")
	type step struct {
		at      time.Duration // since the start
		err     error
		health  string
		detail  string
		changed bool
	}
	check := api.HealthCheck{Type: api.CheckTCP, Port: 80, Failures: 3, Grace: grace(10 * time.Second)}
	tests := []struct {
		name  string
		check api.HealthCheck
		steps []step
	}{
		{"failures in the grace do not count", check, []step{
			{0, fail, api.HealthStarting, "in start-up grace: connection refused", false},
			{5 * time.Second, fail, api.HealthStarting, "in start-up grace: connection refused", false},
			{10 * time.Second, fail, api.HealthStarting, "check failed (1 of 3 in a row): connection refused", false},
			{11 * time.Second, fail, api.HealthStarting, "check failed (2 of 3 in a row): connection refused", false},
			{12 * time.Second, fail, api.HealthUnhealthy, "3 checks failed in a row, the last: connection refused", true},
			{13 * time.Second, fail, api.HealthUnhealthy, "3 checks failed in a row, the last: connection refused", false},
		}},
		{"a pass ends the grace early", check, []step{
			{time.Second, nil, api.HealthHealthy, "", true},
			{2 * time.Second, fail, api.HealthHealthy, "check failed (1 of 3 in a row): connection refused", false},
			{3 * time.Second, fail, api.HealthHealthy, "check failed (2 of 3 in a row): connection refused", false},
			{4 * time.Second, fail, api.HealthUnhealthy, "3 checks failed in a row, the last: connection refused", true},
		}},
		{"one pass resets the count and recovers", check, []step{
			{0, nil, api.HealthHealthy, "", true},
			{20 * time.Second, fail, api.HealthHealthy, "check failed (1 of 3 in a row): connection refused", false},
			{21 * time.Second, fail, api.HealthHealthy, "check failed (2 of 3 in a row): connection refused", false},
			{22 * time.Second, nil, api.HealthHealthy, "", false},
			{23 * time.Second, fail, api.HealthHealthy, "check failed (1 of 3 in a row): connection refused", false},
			{24 * time.Second, fail, api.HealthHealthy, "check failed (2 of 3 in a row): connection refused", false},
			{25 * time.Second, fail, api.HealthUnhealthy, "3 checks failed in a row, the last: connection refused", true},
			{26 * time.Second, nil, api.HealthHealthy, "", true},
		}},
		{"defaults: 3 failures after 30s", api.HealthCheck{Type: api.CheckTCP, Port: 80}, []step{
			{29 * time.Second, fail, api.HealthStarting, "in start-up grace: connection refused", false},
			{30 * time.Second, fail, api.HealthStarting, "check failed (1 of 3 in a row): connection refused", false},
			{40 * time.Second, fail, api.HealthStarting, "check failed (2 of 3 in a row): connection refused", false},
			{50 * time.Second, fail, api.HealthUnhealthy, "3 checks failed in a row, the last: connection refused", true},
		}},
		{"one failure, no grace", api.HealthCheck{Type: api.CheckTCP, Port: 80, Failures: 1, Grace: grace(0)}, []step{
			{0, nil, api.HealthHealthy, "", true},
			{time.Second, fail, api.HealthUnhealthy, "check failed: connection refused", true},
		}},
	}
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHealthState(tt.check, start)
			if s.health != api.HealthStarting {
				t.Fatalf("initial health %q", s.health)
			}
			for i, st := range tt.steps {
				changed := s.observe(start.Add(st.at), st.err)
				if s.health != st.health || s.detail != st.detail || changed != st.changed {
					t.Fatalf("step %d (%s, %v): got %q %q changed=%v, want %q %q changed=%v", i, st.at, st.err, s.health, s.detail, changed, st.health, st.detail, st.changed)
				}
			}
		})
	}
}

// fakeDriver runs "workloads" that are entries in a map: enough for the
// agent's health logic, with an exec whose result the test sets.
type fakeDriver struct {
	mu     sync.Mutex
	kinds  []api.Kind
	tasks  map[string]drivers.Status
	starts map[string]int
	stops  map[string]int
	// execCode and execOut are what Exec returns.
	execCode int
	execOut  string
	execs    atomic.Int32
}

var _ drivers.Execer = (*fakeDriver)(nil)

func newFakeDriver(kinds ...api.Kind) *fakeDriver {
	return &fakeDriver{kinds: kinds, tasks: map[string]drivers.Status{}, starts: map[string]int{}, stops: map[string]int{}}
}

func (f *fakeDriver) Name() string      { return "fake" }
func (f *fakeDriver) Kinds() []api.Kind { return f.kinds }
func (f *fakeDriver) Fingerprint(context.Context) (drivers.Fingerprint, error) {
	return drivers.Fingerprint{CPUs: 4, Memory: 8 * api.GiB, Detail: "fake"}, nil
}
func (f *fakeDriver) Close() error { return nil }

func (f *fakeDriver) Start(_ context.Context, t drivers.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts[t.Workload]++
	f.tasks[t.Workload] = drivers.Status{Workload: t.Workload, Epoch: t.Epoch, State: drivers.TaskRunning, ID: t.Workload}
	return nil
}

func (f *fakeDriver) Inspect(_ context.Context, w string) (drivers.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.tasks[w]
	if !ok {
		return st, drivers.ErrNotFound
	}
	return st, nil
}

func (f *fakeDriver) List(context.Context) ([]drivers.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []drivers.Status
	for _, st := range f.tasks {
		out = append(out, st)
	}
	return out, nil
}

func (f *fakeDriver) Stop(_ context.Context, w string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.tasks[w]
	if !ok {
		return drivers.ErrNotFound
	}
	f.stops[w]++
	st.State, st.Detail = drivers.TaskStopped, "exit code 143 (SIGTERM)"
	f.tasks[w] = st
	return nil
}

func (f *fakeDriver) Destroy(_ context.Context, w string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tasks, w)
	return nil
}

func (f *fakeDriver) Exec(_ context.Context, w string, cmd []string) (int, string, error) {
	f.execs.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.tasks[w]; !ok || st.State != drivers.TaskRunning {
		return -1, "", drivers.ErrNotFound
	}
	return f.execCode, f.execOut, nil
}

func (f *fakeDriver) counts(w string) (starts, stops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[w], f.stops[w]
}

// healthAgent runs an agent on host h1 with d, whose clock runs speed
// times faster than the real one (restart backoff and grace periods are
// measured on it; check intervals on real timers).
func healthAgent(t *testing.T, st clusterstore.Store, d drivers.Driver, speed int) {
	t.Helper()
	begin := time.Now()
	fast := func() time.Time { return begin.Add(time.Since(begin) * time.Duration(speed)) }
	a, err := New(Config{Host: "h1", Store: st, Driver: d, SessionTTL: 2 * time.Second, Resync: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: fast})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// allocate stores a workload and its allocation to h1; it returns the epoch.
func allocate(t *testing.T, st clusterstore.Store, spec api.WorkloadSpec) int64 {
	t.Helper()
	put(t, st, clusterstore.WorkloadKey(spec.Name), api.Workload{Schema: 1, WorkloadSpec: spec})
	return put(t, st, clusterstore.AllocationKey(spec.Name), api.Allocation{Schema: 1, Workload: spec.Name, Host: "h1", CPUs: spec.CPUs, Memory: spec.Memory})
}

// statusLog records every status the agent writes for one workload, so
// that a test sees the short-lived ones too.
type statusLog struct {
	t    *testing.T
	name string
	mu   sync.Mutex
	seen []api.WorkloadStatus
	// next is the index after the last status wait matched.
	next int
}

func watchStatus(t *testing.T, st clusterstore.Store, name string) *statusLog {
	t.Helper()
	l := &statusLog{t: t, name: name}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := st.Watch(ctx, clusterstore.StatusKey("h1", name), 0)
	go func() {
		for resp := range ch {
			for _, ev := range resp.Events {
				var s api.WorkloadStatus
				if ev.Type != clusterstore.EventPut || clusterstore.Decode(ev.KV, &s) != nil || s.Workload != name {
					continue
				}
				l.mu.Lock()
				l.seen = append(l.seen, s)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// wait waits for a status, after the one the last wait matched, that
// satisfies cond, and returns it.
func (l *statusLog) wait(what string, cond func(api.WorkloadStatus) bool) api.WorkloadStatus {
	l.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		l.mu.Lock()
		for i := l.next; i < len(l.seen); i++ {
			if cond(l.seen[i]) {
				l.next = i + 1
				s := l.seen[i]
				l.mu.Unlock()
				return s
			}
		}
		var last api.WorkloadStatus
		if len(l.seen) > 0 {
			last = l.seen[len(l.seen)-1]
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: %s: timed out; last status %+v", l.name, what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// toggleServer is a TCP and HTTP server on the loopback that the test
// makes fail: closed (connections refused) or answering 503.
type toggleServer struct {
	t    *testing.T
	port int
	mu   sync.Mutex
	ln   net.Listener
	srv  *http.Server
	// sick makes /health answer 503.
	sick atomic.Bool
}

func newToggleServer(t *testing.T) *toggleServer {
	s := &toggleServer{t: t}
	s.open()
	t.Cleanup(s.close)
	return s
}

func (s *toggleServer) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr := "127.0.0.1:0"
	if s.port != 0 {
		addr = "127.0.0.1:" + strconv.Itoa(s.port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.ln, s.port = ln, ln.Addr().(*net.TCPAddr).Port
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		if s.sick.Load() {
			http.Error(w, "sick", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	go func() { _ = s.srv.Serve(ln) }()
}

func (s *toggleServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// TestAgentHealthCheckRestartsThenGivesUp: a container whose port closes
// goes unhealthy, is stopped and restarted under its restart policy (each
// restart a new grace period and a new check), and after api.RestartLimit
// restarts its host gives up, with the health in the report.
func TestAgentHealthCheckRestartsThenGivesUp(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newFakeDriver(api.KindContainer)
	healthAgent(t, st, d, 10)
	srv := newToggleServer(t)
	check := &api.HealthCheck{Type: api.CheckTCP, Port: srv.port, Interval: api.Duration(50 * time.Millisecond), Failures: 2, Grace: grace(0)}
	web := watchStatus(t, st, "web")
	epoch := allocate(t, st, api.WorkloadSpec{Name: "web", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: "x", Check: check})

	s := web.wait("healthy", func(s api.WorkloadStatus) bool { return s.Health == api.HealthHealthy })
	if s.State != api.StateRunning || s.Epoch != epoch || s.HealthDetail != "" {
		t.Fatalf("healthy status: %+v", s)
	}
	srv.close()
	s = web.wait("unhealthy", func(s api.WorkloadStatus) bool { return s.Health == api.HealthUnhealthy })
	t.Logf("unhealthy: %s %q / %q", s.State, s.Reason, s.HealthDetail)
	// Refused, or under load not answered within the 25ms timeout.
	refused := fmt.Sprintf("2 checks failed in a row, the last: dial tcp 127.0.0.1:%d: connect: connection refused", srv.port)
	timeout := fmt.Sprintf("2 checks failed in a row, the last: tcp 127.0.0.1:%d: no answer within 25ms", srv.port)
	if s.HealthDetail != refused && s.HealthDetail != timeout {
		t.Errorf("health detail %q, want %q", s.HealthDetail, refused)
	}
	s = web.wait("given up", func(s api.WorkloadStatus) bool { return s.GaveUp })
	if s.State != api.StateFailed || s.Health != api.HealthUnhealthy || !strings.Contains(s.Reason, "gave up after 3 restarts on h1: unhealthy: 2 checks failed in a row") {
		t.Errorf("gave up: %+v", s)
	}
	starts, stops := d.counts("web")
	if starts != 1+api.RestartLimit || stops != 1+api.RestartLimit {
		t.Errorf("started %d and stopped %d times, want %d each", starts, stops, 1+api.RestartLimit)
	}
	// It stays given up, stopped, and is checked no more.
	time.Sleep(300 * time.Millisecond)
	if n, _ := d.counts("web"); n != starts {
		t.Errorf("started again after giving up: %d", n)
	}
	if s, _ := d.Inspect(context.Background(), "web"); s.State != drivers.TaskStopped {
		t.Errorf("driver state after giving up: %+v", s)
	}
}

// TestAgentHealthCheckRecovers: an HTTP check that fails fewer times in a
// row than its limit never restarts the workload; the restarted workload
// is checked afresh, in its grace period first.
func TestAgentHealthCheckRecovers(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newFakeDriver(api.KindContainer)
	healthAgent(t, st, d, 1)
	srv := newToggleServer(t)
	check := &api.HealthCheck{Type: api.CheckHTTP, Port: srv.port, Path: "/health", Interval: api.Duration(30 * time.Millisecond), Failures: 1000, Grace: grace(0)}
	apiLog := watchStatus(t, st, "api")
	allocate(t, st, api.WorkloadSpec{Name: "api", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: "x", Check: check})
	apiLog.wait("healthy", func(s api.WorkloadStatus) bool { return s.Health == api.HealthHealthy })
	srv.sick.Store(true)
	s := apiLog.wait("failing", func(s api.WorkloadStatus) bool { return strings.Contains(s.HealthDetail, "HTTP 503") })
	if s.Health != api.HealthHealthy || !strings.Contains(s.HealthDetail, fmt.Sprintf("GET http://127.0.0.1:%d/health: HTTP 503 Service Unavailable", srv.port)) {
		t.Errorf("failing below the limit: %+v", s)
	}
	srv.sick.Store(false)
	apiLog.wait("recovered", func(s api.WorkloadStatus) bool { return s.Health == api.HealthHealthy && s.HealthDetail == "" })
	if starts, stops := d.counts("api"); starts != 1 || stops != 0 {
		t.Errorf("started %d, stopped %d times; want 1, 0", starts, stops)
	}

	// A workload that crashed is checked afresh once it runs again: in
	// its grace period, failures do not count.
	spec := api.WorkloadSpec{Name: "slow", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: "x",
		Check: &api.HealthCheck{Type: api.CheckTCP, Port: freePort(t), Interval: api.Duration(30 * time.Millisecond), Failures: 1, Grace: grace(time.Hour)}}
	slow := watchStatus(t, st, "slow")
	allocate(t, st, spec)
	s = slow.wait("in grace", func(s api.WorkloadStatus) bool { return strings.HasPrefix(s.HealthDetail, "in start-up grace: ") })
	if s.Health != api.HealthStarting || s.State != api.StateRunning {
		t.Errorf("in grace: %+v", s)
	}
	time.Sleep(200 * time.Millisecond)
	if starts, _ := d.counts("slow"); starts != 1 {
		t.Errorf("restarted in its grace period: %d starts", starts)
	}
}

// TestAgentExecCheckAndVM: exec checks go to the driver's Execer inside
// the workload; a VM's tcp check cannot run and says so without blocking.
func TestAgentExecCheckAndVM(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newFakeDriver(api.KindContainer, api.KindVM)
	d.execCode, d.execOut = 1, "starting...\nnot ready: /tmp/ready missing\n"
	healthAgent(t, st, d, 1)
	db, vm1, plain := watchStatus(t, st, "db"), watchStatus(t, st, "vm1"), watchStatus(t, st, "plain")
	allocate(t, st, api.WorkloadSpec{Name: "db", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: "x",
		Check: &api.HealthCheck{Type: api.CheckExec, Command: []string{"/bin/sh", "-c", "test -f /tmp/ready"}, Interval: api.Duration(30 * time.Millisecond), Failures: 1000, Grace: grace(0)}})
	allocate(t, st, api.WorkloadSpec{Name: "vm1", Kind: api.KindVM, CPUs: 1, Memory: 64 * api.MiB,
		Check: &api.HealthCheck{Type: api.CheckTCP, Port: 22}})
	s := db.wait("exec failing", func(s api.WorkloadStatus) bool { return s.HealthDetail != "" })
	// The count depends on when a pass wrote it.
	if want := " of 1000 in a row): exit code 1: not ready: /tmp/ready missing"; !strings.HasPrefix(s.HealthDetail, "check failed (") || !strings.HasSuffix(s.HealthDetail, want) || s.Health != api.HealthStarting {
		t.Errorf("exec check: %q %q, want \"check failed (N%s\"", s.Health, s.HealthDetail, want)
	}
	d.mu.Lock()
	d.execCode = 0
	d.mu.Unlock()
	db.wait("exec passing", func(s api.WorkloadStatus) bool { return s.Health == api.HealthHealthy })

	s = vm1.wait("unknown", func(s api.WorkloadStatus) bool { return s.Health != "" && s.Health != api.HealthStarting })
	if s.Health != api.HealthUnknown || s.HealthDetail != checkUnsupportedVM || s.State != api.StateRunning {
		t.Errorf("vm check: %+v", s)
	}
	// Without a check, no health.
	allocate(t, st, api.WorkloadSpec{Name: "plain", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: "x"})
	plain.wait("running", func(s api.WorkloadStatus) bool { return s.State == api.StateRunning })
	time.Sleep(100 * time.Millisecond)
	if s, _ := status(t, st, "h1", "plain"); s.Health != "" || s.HealthDetail != "" {
		t.Errorf("no check: %+v", s)
	}
}

// TestAgentHealthMonitorsStop: removing the allocation stops the checks.
func TestAgentHealthMonitorsStop(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newFakeDriver(api.KindContainer)
	healthAgent(t, st, d, 1)
	job := watchStatus(t, st, "job")
	allocate(t, st, api.WorkloadSpec{Name: "job", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: "x",
		Check: &api.HealthCheck{Type: api.CheckExec, Command: []string{"true"}, Interval: api.Duration(20 * time.Millisecond), Failures: 3, Grace: grace(0)}})
	job.wait("healthy", func(s api.WorkloadStatus) bool { return s.Health == api.HealthHealthy })
	if _, _, err := st.Txn(context.Background(), nil, []clusterstore.Op{clusterstore.Delete(clusterstore.AllocationKey("job"))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "job removed", func() bool {
		_, err := d.Inspect(context.Background(), "job")
		return errors.Is(err, drivers.ErrNotFound)
	})
	time.Sleep(100 * time.Millisecond)
	n := d.execs.Load()
	time.Sleep(200 * time.Millisecond)
	if m := d.execs.Load(); m != n {
		t.Errorf("still checked after removal: %d -> %d execs", n, m)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestAgentUnhealthyRestartPolicyNever: with restart policy "never" an
// unhealthy workload is stopped and stays stopped, and its report says why.
func TestAgentUnhealthyRestartPolicyNever(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newFakeDriver(api.KindContainer)
	d.execCode = 1
	healthAgent(t, st, d, 1)
	once := watchStatus(t, st, "once")
	allocate(t, st, api.WorkloadSpec{Name: "once", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: "x", Restart: api.RestartNever,
		Check: &api.HealthCheck{Type: api.CheckExec, Command: []string{"false"}, Interval: api.Duration(20 * time.Millisecond), Failures: 1, Grace: grace(0)}})
	s := once.wait("stopped for good", func(s api.WorkloadStatus) bool { return strings.Contains(s.Reason, "not restarted") })
	if want := "unhealthy: check failed: exit code 1; not restarted (restart policy never)"; s.Reason != want || s.State != api.StateFailed || s.Health != api.HealthUnhealthy {
		t.Errorf("status %+v, want reason %q", s, want)
	}
	time.Sleep(200 * time.Millisecond)
	if starts, stops := d.counts("once"); starts != 1 || stops != 1 {
		t.Errorf("started %d, stopped %d times; want 1 each", starts, stops)
	}
}

// TestCheckHost: tcp and http checks of a container go to its floating IP
// while this host holds it, else to the loopback address.
func TestCheckHost(t *testing.T) {
	a, err := New(Config{Host: "h1", Store: memory.New(), Driver: newFakeDriver(api.KindContainer)})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.checkHost("web", 5); got != "127.0.0.1" {
		t.Errorf("no floating IP: %s", got)
	}
	a.shared.vips["192.0.2.20"] = heldVIP{workload: "web", epoch: 5, prefix: netip.MustParsePrefix("192.0.2.20/24")}
	a.shared.vips["192.0.2.10"] = heldVIP{workload: "web", epoch: 5, prefix: netip.MustParsePrefix("192.0.2.10/24")}
	a.shared.vips["192.0.2.5"] = heldVIP{workload: "other", epoch: 5, prefix: netip.MustParsePrefix("192.0.2.5/24")}
	if got := a.checkHost("web", 5); got != "192.0.2.10" {
		t.Errorf("held floating IPs: %s", got)
	}
	if got := a.checkHost("web", 6); got != "127.0.0.1" {
		t.Errorf("floating IP held for another epoch: %s", got)
	}
}

// TestResetHealth: a start (after a crash, a self-fence or a removal
// behind the agent's back) begins a new run: what the previous run's
// checks found does not stop the new one.
func TestResetHealth(t *testing.T) {
	d := newFakeDriver(api.KindContainer)
	a, err := New(Config{Host: "h1", Store: memory.New(), Driver: d, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	check := api.HealthCheck{Type: api.CheckTCP, Port: 1, Failures: 1, Grace: grace(0)}
	want := desired{alloc: api.Allocation{Workload: "web", Epoch: 4}, spec: api.WorkloadSpec{Name: "web", Kind: api.KindContainer, Check: &check}}
	stale := &monitor{epoch: 4, check: check, phase: monChecking, st: newHealthState(check, time.Now())}
	stale.st.observe(time.Now(), errors.New("refused"))
	a.health.mons["web"] = stale
	st := api.WorkloadStatus{Workload: "web", Epoch: 4, State: api.StateRunning}
	a.fillHealth(&st)
	if st.Health != api.HealthUnhealthy {
		t.Fatalf("before the reset: %+v", st)
	}

	a.resetHealth(want)
	if a.stopUnhealthy(context.Background(), want) {
		t.Fatal("stopped a new run for the previous run's failed check")
	}
	for _, state := range []api.State{api.StateStarting, api.StateRunning} {
		st := api.WorkloadStatus{Workload: "web", Epoch: 4, State: state}
		if a.fillHealth(&st); st.Health != api.HealthStarting || st.HealthDetail != "" {
			t.Errorf("%s after the reset: %+v", state, st)
		}
	}
	st = api.WorkloadStatus{Workload: "web", Epoch: 4, State: api.StateFailed, Reason: "start failed"}
	if a.fillHealth(&st); st.Health != "" {
		t.Errorf("failed start after the reset: %+v", st)
	}
	// Without a check, a reset leaves nothing behind.
	a.resetHealth(desired{alloc: api.Allocation{Workload: "web", Epoch: 4}, spec: api.WorkloadSpec{Name: "web", Kind: api.KindContainer}})
	if len(a.health.mons) != 0 {
		t.Errorf("monitors after a reset without a check: %v", a.health.mons)
	}
}
