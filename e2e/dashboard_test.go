package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/ui/uitest"
)

// browse runs browser actions with a bound, so that a page that never shows
// what the test waits for fails the test instead of hanging it.
func browse(t *testing.T, ctx context.Context, timeout time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("dashboard: %s: %v", what, err)
	}
}

// TestDashboard: the web dashboard of a dev cluster, in a real headless
// Chromium. It shows the three hosts; a VM created with bulwarkctl appears
// and turns running, and one too big for any host shows as pending with the
// scheduler's reason, all without a reload. With BULWARK_UPDATE_DEV_SCREENSHOT=1
// the page's screenshot becomes docs/dashboard.png.
func TestDashboard(t *testing.T) {
	browser := uitest.Browser(t, 1440, 900) // skips here, before the cluster starts, if there is no Chromium
	console := uitest.WatchConsole(t, browser)
	apiURL, _, _ := startDev(t, 3)

	resp, err := http.Get(apiURL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s/ui/: %d %s: the server does not serve the dashboard (is ui.Handler mounted at /ui/?)\n%.300s",
			apiURL, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	// The browser has no token: it is sent to sign in, as an operator is.
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(apiURL + "/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), tokenFor(apiURL)),
		chromedp.Submit(chromedp.CSS(`input[name="token"]`)),
	}
	for _, h := range []string{"host-1", "host-2", "host-3"} {
		steps = append(steps, chromedp.WaitVisible(chromedp.CSS(`tr[data-host="`+h+`"][data-state="ready"]`)))
	}
	steps = append(steps, chromedp.WaitVisible(chromedp.CSS(`#live.on`)))
	browse(t, browser, 15*time.Second, "the three hosts, ready, and the stream open", steps...)
	// A reload would lose this.
	browse(t, browser, 5*time.Second, "mark the page", chromedp.Evaluate[chromedp.Void](`window.bulwarkTestMark = 42`))

	if _, errOut, code := ctl(t, apiURL, "vm", "create", "web", "--cpus", "1", "--memory", "256MiB"); code != 0 {
		t.Fatalf("vm create web: exit %d: %s", code, errOut)
	}
	if _, errOut, code := ctl(t, apiURL, "vm", "create", "huge", "--cpus", "64", "--memory", "1GiB"); code != 0 {
		t.Fatalf("vm create huge: exit %d: %s", code, errOut)
	}
	start := time.Now()
	browse(t, browser, 15*time.Second, "web running and huge pending, without a reload",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-workload="web"][data-state="running"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-workload="huge"][data-state="pending"]`)),
	)
	t.Logf("the page showed web running %s after the create", time.Since(start).Round(time.Millisecond))

	var w api.WorkloadView
	ctlJSON(t, apiURL, &w, "workload", "show", "web")
	ctx, cancel := context.WithTimeout(browser, 5*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[
		String(window.bulwarkTestMark || 0),
		document.querySelector('tr[data-workload="web"] td:nth-child(4)').textContent,
		document.querySelector('tr[data-workload="huge"] td:last-child').textContent,
		document.querySelector('#events-body').textContent,
	]`))
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "42" {
		t.Errorf("the page reloaded")
	}
	if got[1] != w.Host {
		t.Errorf("the page shows web on %q, bulwarkctl on %q", got[1], w.Host)
	}
	if !strings.Contains(got[2], "larger than every host") {
		t.Errorf("huge's reason on the page: %q", got[2])
	}
	if !strings.Contains(got[3], "placed on "+w.Host) {
		t.Errorf("no placement event for web on the page: %q", got[3])
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("BULWARK_UPDATE_DEV_SCREENSHOT") == "1" {
		out := filepath.Join("..", "docs", "dashboard.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", out, len(png))
	}
	for _, p := range console.Problems() {
		t.Errorf("browser console: %s", p)
	}
}
