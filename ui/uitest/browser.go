// Package uitest runs a real headless Chromium for the tests that drive the
// dashboard (the ui package's own tests and the end-to-end suite).
//
// A machine without Chromium skips those tests, loudly, unless
// BULWARK_REQUIRE_REAL=1 (CI sets it; scripts/deps.sh test installs the
// browser), which makes that a failure.
package uitest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/bulwarkhq/bulwark/drivers/daemonproc/daemontest"
)

// ExecPath is where Debian's chromium package puts the browser.
const ExecPath = "/usr/bin/chromium"

// PathEnv names another browser binary to use instead (any Chromium or
// Chrome).
const PathEnv = "BULWARK_CHROMIUM"

// Browser starts a fresh headless Chromium with a window of width x height
// and returns a chromedp context for one tab in it; both go when t ends.
// The browser is started before Browser returns: derive a context with a
// timeout from the result for each step (a timeout on the first step would
// bound the browser's life).
func Browser(t testing.TB, width, height int) context.Context {
	t.Helper()
	path := os.Getenv(PathEnv)
	if path == "" {
		path = ExecPath
		if _, err := os.Stat(path); err != nil {
			if path, err = exec.LookPath("chromium"); err != nil {
				skip(t, fmt.Sprintf("no Chromium at %s or on PATH", ExecPath))
			}
		}
	} else if _, err := os.Stat(path); err != nil {
		skip(t, fmt.Sprintf("%s=%s: %v", PathEnv, path, err))
	}
	// A fresh profile each time: nothing carries over between tests.
	dir, err := os.MkdirTemp("", "bulwark-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		// Crashpad keeps its database under $XDG_CONFIG_HOME/chromium,
		// whatever the profile: keep it in the throwaway directory too.
		chromedp.Env("XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir),
		chromedp.WindowSize(width, height),
		chromedp.Headless,
		chromedp.NoSandbox, // we run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// The machine may have no network at all: without these the
		// browser waits on connections it makes for itself.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser process to exit
		_ = os.RemoveAll(dir)
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

func skip(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(daemontest.RequireEnv) == "1" {
		t.Fatalf("%s=1 but this machine cannot run the Chromium tests: %s (run scripts/deps.sh test as root)", daemontest.RequireEnv, reason)
	}
	t.Skipf("SKIPPING CHROMIUM TEST: %s: %s; install it with scripts/deps.sh test (Debian package chromium), or set %s=1 to make this a failure", t.Name(), reason, daemontest.RequireEnv)
}

// Console collects what the page writes to the console, its uncaught
// exceptions and the browser's log entries (where Chromium reports a
// Content-Security-Policy violation or a failed request).
type Console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
	done chan struct{}
}

// WatchConsole starts collecting on the tab of ctx; it stops when t ends.
func WatchConsole(t testing.TB, ctx context.Context) *Console {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	c := &Console{done: make(chan struct{})}
	msgs := chromedp.Console(ctx) // subscribed from here on
	go func() {
		defer close(c.done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// Problems returns the errors, warnings and exceptions so far, one a line.
func (c *Console) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		switch m.Type {
		case chromedp.ConsoleError, chromedp.ConsoleWarning, chromedp.ConsoleException:
			out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text)))
		}
	}
	return out
}
