package ui

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/ui/uitest"
)

// These tests load the page in a real headless Chromium (see uitest): the
// server-drawn first paint, the script's live redraws, and the
// Content-Security-Policy the browser enforces.

// step runs actions with a bound, so that a page that never shows what the
// test waits for fails the test instead of hanging it.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func dashboardServer(t *testing.T, f *fakeSource) string {
	t.Helper()
	srv := httptest.NewServer(Handler(f, Options{Poll: 50 * time.Millisecond}))
	t.Cleanup(func() {
		// The page's stream stays open as long as the browser does, and
		// Close waits for open requests: end the connections first.
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL + "/ui/"
}

func noConsoleProblems(t *testing.T, c *uitest.Console) {
	t.Helper()
	for _, p := range c.Problems() {
		t.Errorf("browser console: %s", p)
	}
}

func TestChromiumLiveUpdate(t *testing.T) {
	ctx := uitest.Browser(t, 1280, 900)
	console := uitest.WatchConsole(t, ctx)
	f := newFake(smallCluster())
	url := dashboardServer(t, f)

	step(t, ctx, "load the page",
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-host="host-1"][data-state="ready"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-workload="web"][data-state="running"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#services-body tr.empty`)),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)), // the stream is open
	)
	// A reload would lose this.
	eval[chromedp.Void](t, ctx, `window.bulwarkTestMark = 42`)

	f.bump(func(s *State) {
		s.Workloads = append(s.Workloads, workload("api", api.KindContainer, 1, 512*api.MiB, api.StatePending, "", 0, "no host fits: <b>cpu</b> (1 host)"))
		s.Events = append(s.Events, event(time.Minute, "preempted", "host-1", "web", "<img src=x> preempted by api"))
		s.Nodes[0].State = api.NodeSuspect
		s.Nodes[0].Reason = "heartbeat lease expired 3s ago"
		s.Services = []api.ServiceView{balanced(service("front", 2,
			member("front-1", api.StateRunning, "host-1", api.HealthHealthy),
			member("front-2", api.StateStarting, "host-1", api.HealthStarting)),
			"10.0.0.100", "host-1", []api.ServicePort{tcp(80, 8080)}, "front-1")}
	})
	step(t, ctx, "see the change without a reload",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-workload="api"][data-state="pending"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-host="host-1"][data-state="suspect"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-service="front"][data-state="active"]`)),
	)
	if mark := eval[int](t, ctx, `window.bulwarkTestMark || 0`); mark != 42 {
		t.Fatalf("the page reloaded (mark %d)", mark)
	}
	got := eval[[]string](t, ctx, `[
		document.querySelector('tr[data-workload="api"] td:last-child').textContent,
		String(document.querySelectorAll('#workloads-body b, #events-body img').length),
		document.querySelector('#events-body tr td.message').textContent,
		document.body.dataset.revision,
		document.querySelector('#summary .card.warn .value').textContent,
	]`)
	want := []string{"no host fits: <b>cpu</b> (1 host)", "0", "<img src=x> preempted by api", "2", "1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("after the update:\n got %q\nwant %q", got, want)
	}
	const serviceCells = `[...document.querySelectorAll('tr[data-service="front"] td')].map(td => td.textContent)`
	cells := eval[[]string](t, ctx, serviceCells)
	want = []string{"front", "1 / 2", "1 healthy · 1 starting", "10.0.0.100:80", "host-1", "1 of 2", "active"}
	if strings.Join(cells, "|") != strings.Join(want, "|") {
		t.Errorf("the new service:\n got %q\nwant %q", cells, want)
	}

	// The second copy turns healthy and joins the pool, the address moves
	// to another host; then the service is deleted.
	f.bump(func(s *State) {
		s.Services = []api.ServiceView{balanced(service("front", 2,
			member("front-1", api.StateRunning, "host-1", api.HealthHealthy),
			member("front-2", api.StateRunning, "host-1", api.HealthHealthy)),
			"10.0.0.100", "host-2", []api.ServicePort{tcp(80, 8080)}, "front-1", "front-2")}
	})
	step(t, ctx, "see the service change",
		chromedp.Poll[chromedp.Void](`document.querySelector('tr[data-service="front"] td:nth-child(5)').textContent === "host-2"`, chromedp.WithPollingTimeout(10*time.Second)),
	)
	cells = eval[[]string](t, ctx, serviceCells)
	want = []string{"front", "2 / 2", "2 healthy", "10.0.0.100:80", "host-2", "2 of 2", "active"}
	if strings.Join(cells, "|") != strings.Join(want, "|") {
		t.Errorf("the changed service:\n got %q\nwant %q", cells, want)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('tr[data-service="front"] .short').length`); n != 0 {
		t.Errorf("%d cells of a complete service are marked short", n)
	}
	f.bump(func(s *State) { s.Services[0].Deleting = true })
	step(t, ctx, "see the service deleting", chromedp.WaitVisible(chromedp.CSS(`tr[data-service="front"][data-state="deleting"] .badge.st-deleting`)))
	f.bump(func(s *State) { s.Services = nil })
	step(t, ctx, "see the service gone", chromedp.WaitVisible(chromedp.CSS(`#services-body tr.empty`)))
	if txt := eval[string](t, ctx, `document.getElementById('services-body').textContent`); txt != "No services." {
		t.Errorf("services panel without services: %q", txt)
	}
	if mark := eval[int](t, ctx, `window.bulwarkTestMark || 0`); mark != 42 {
		t.Fatalf("the page reloaded (mark %d)", mark)
	}
	noConsoleProblems(t, console)
}

// canonJS serialises the parts of the page the script redraws, ignoring the
// whitespace between tags and the exact float in a meter's value attribute.
const canonJS = `(() => {
	const canon = (n) => {
		if (n.nodeType === Node.TEXT_NODE) {
			const s = n.data.replace(/\s+/g, ' ');
			return s.trim() === '' ? '' : s;
		}
		if (n.nodeType !== Node.ELEMENT_NODE) return '';
		let attrs = [...n.attributes].filter(a => a.name !== 'value').map(a => a.name + '=' + JSON.stringify(a.value)).sort();
		if (n.localName === 'meter') attrs.push('ratio=' + n.value.toFixed(4));
		return '<' + n.localName + (attrs.length ? ' ' + attrs.join(' ') : '') + '>' +
			[...n.childNodes].map(canon).join('') + '</' + n.localName + '>';
	};
	return ['health', 'summary', 'hosts-body', 'workloads-body', 'services-body', 'events-body'].map(id => canon(document.getElementById(id)));
})()`

// TestChromiumRedrawMatchesServer: the script draws exactly what the
// template draws, for every kind of row and cell.
func TestChromiumRedrawMatchesServer(t *testing.T) {
	ctx := uitest.Browser(t, 1280, 900)
	console := uitest.WatchConsole(t, ctx)
	st := realisticCluster()
	// Every branch of the templates, and sizes where rounding differs.
	lost := host("host-4", 4, 0, 1280*api.MiB, 0, 0)
	lost.State, lost.Reason, lost.Fencing, lost.Detail = api.NodeLost, "no heartbeat for 12s; fencing next", "unfenceable: redfish 10.0.0.14: connection refused", ""
	bare := host("host-5", 0, 0, 0, 0, 0)
	bare.Fencing, bare.State, bare.Detail = "", api.NodeDown, ""
	st.Nodes = append(st.Nodes, lost, bare)
	st.Workloads = append(st.Workloads,
		workload("crashy", api.KindContainer, 1, 1536*api.MiB-1, api.StateFailed, "host-2", 18001, `exit 1: "oops" <b>bold</b>; reschedule limit (3) reached`),
		workload("old", api.KindVM, 1, 100*api.KiB+512, api.StateStopping, "host-4", 3, "deleting"),
	)
	gone := service("gone", 3, member("gone-1", api.StateStopping, "host-2", ""), api.ServiceMember{Name: "gone-2", State: api.StateRunning, Host: "host-1", Health: api.HealthHealthy, Deleting: true})
	gone.Deleting = true
	dns := balanced(service("dns", 2,
		member("dns-1", api.StateRunning, "host-1", api.HealthUnhealthy),
		member("dns-2", api.StateRunning, "host-2", api.HealthUnknown)),
		"fd00::53", "", []api.ServicePort{{Port: 53, TargetPort: 5353, Proto: "udp"}, tcp(53, 5353)})
	dns.Pool = nil // the leader has not written one yet
	empty := service("empty", 0)
	empty.Members = nil // null in the JSON, and no instances at all
	st.Services = append(st.Services, gone, dns, empty)
	st.Events = append(st.Events, api.Event{Type: "placed", Message: "placed 2 workloads in one plan"}) // zero time, no host
	st.Health.Leader = ""
	f := newFake(st)
	url := dashboardServer(t, f)

	step(t, ctx, "load the page", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`#live.on`)))
	f.bump(nil) // same cluster, next revision: the script redraws it all
	rev := st.Health.Revision + 1
	step(t, ctx, "wait for the redraw", chromedp.Poll[chromedp.Void](`document.body.dataset.revision === "`+strconv.FormatInt(rev, 10)+`"`, chromedp.WithPollingTimeout(10*time.Second)))
	drawn := eval[[]string](t, ctx, canonJS)
	step(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`tr[data-host="host-5"]`)))
	served := eval[[]string](t, ctx, canonJS)
	if len(drawn) != len(served) {
		t.Fatalf("%d parts drawn, %d served", len(drawn), len(served))
	}
	for i := range served {
		if drawn[i] != served[i] {
			t.Errorf("part %d differs: %s", i, firstDiff(served[i], drawn[i]))
		}
	}
	if !strings.Contains(served[2], "1.3GiB") || !strings.Contains(served[3], "1.5GiB") || !strings.Contains(served[3], "100.5KiB") {
		t.Errorf("the fixture lost its rounding cases:\n%s\n%s", served[2], served[3])
	}
	for _, want := range []string{"[fd00::53]:53/udp,53", "1 unhealthy", "1 unknown", "st-deleting", `data-service="empty"`, "10.0.0.100:80,443"} {
		if !strings.Contains(served[4], want) {
			t.Errorf("the services part lacks %q:\n%s", want, served[4])
		}
	}
	noConsoleProblems(t, console)
}

// TestChromiumWithoutJavaScript: the server-drawn page is complete.
func TestChromiumWithoutJavaScript(t *testing.T) {
	ctx := uitest.Browser(t, 1280, 900)
	url := dashboardServer(t, newFake(realisticCluster()))
	step(t, ctx, "load the page with scripts off",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}),
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-host="host-3"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-workload="analytics"][data-state="pending"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)),
	)
	txt, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#live`)))
	if err != nil || txt != "snapshot" {
		t.Errorf("live indicator %q (%v), want snapshot", txt, err)
	}
}

// TestChromiumScreenshot writes docs/dashboard.png when
// BULWARK_UPDATE_SCREENSHOT=1.
func TestChromiumScreenshot(t *testing.T) {
	if os.Getenv("BULWARK_UPDATE_SCREENSHOT") != "1" {
		t.Skip("set BULWARK_UPDATE_SCREENSHOT=1 to rewrite docs/dashboard.png")
	}
	ctx := uitest.Browser(t, 1440, 900)
	console := uitest.WatchConsole(t, ctx)
	url := dashboardServer(t, newFake(realisticCluster()))
	step(t, ctx, "load the page", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`#live.on`)))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join("..", "docs", "dashboard.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(png))
	noConsoleProblems(t, console)
}

// firstDiff shows where the server's markup a and the script's b part.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(0, i-120)
	return fmt.Sprintf("at byte %d:\nserver: …%s\nscript: …%s", i, a[from:min(len(a), i+120)], b[from:min(len(b), i+120)])
}
