package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/fencing"
	"github.com/bulwarkhq/bulwark/fencing/bmcemu"
)

func bmcCommand() *cli.Command {
	return &cli.Command{
		Name:  "bmc",
		Usage: "run a Redfish BMC emulator (a stand-in for a host's BMC, for dev, tests and labs)",
		Description: "Serves the part of the Redfish API that fencing uses, over HTTPS with a freshly\n" +
			"generated self-signed certificate: the service root, session login/logout and Basic\n" +
			"auth, one computer system with its PowerState, and the ComputerSystem.Reset action\n" +
			"(On, ForceOff, GracefulShutdown, ForceRestart, PowerCycle). The power is emulated:\n" +
			"nothing real is switched unless you give --on-power-off/--on-power-on commands.\n" +
			"Runs until Ctrl-C (SIGINT) or SIGTERM.\n\n" +
			"Point Bulwark at it like at a real BMC, with the certificate from --cert-out as the\n" +
			"CA file; any Redfish client works too (curl, gofish, Debian's fence_redfish).\n\n" +
			"Example:\n" +
			"  echo 'a-lab-password' > /tmp/bmc.pw\n" +
			"  bulwarkd bmc --password-file /tmp/bmc.pw --cert-out /tmp/bmc.pem --power-off-delay 1s\n" +
			"  # in another shell:\n" +
			"  curl --cacert /tmp/bmc.pem -u admin:\"$(cat /tmp/bmc.pw)\" https://127.0.0.1:8443/redfish/v1/Systems/1\n" +
			"  fence_redfish --ip 127.0.0.1 --ipport 8443 --username admin --password-script 'cat /tmp/bmc.pw' \\\n" +
			"      --ssl-insecure -o off",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8443", Usage: "HTTPS listen address (host:port; port 0 picks a free one)", EnvVars: []string{"BULWARK_BMC_LISTEN"}},
			&cli.StringFlag{Name: "username", Value: "admin", Usage: "the one account's user name", EnvVars: []string{"BULWARK_BMC_USERNAME"}},
			&cli.StringFlag{Name: "password-file", Usage: "file holding the account's password (one trailing newline is ignored); or set BULWARK_BMC_PASSWORD", EnvVars: []string{"BULWARK_BMC_PASSWORD_FILE"}},
			&cli.StringFlag{Name: "system-id", Value: "1", Usage: "Id of the emulated computer system (its URI is /redfish/v1/Systems/<id>)"},
			&cli.StringFlag{Name: "cert-out", Usage: "write the generated certificate (PEM) here, for clients to use as their CA file"},
			&cli.StringSliceFlag{Name: "cert-host", Usage: "extra DNS name or IP for the certificate (repeatable); it always covers localhost, 127.0.0.1, ::1 and the --listen host"},
			&cli.StringFlag{Name: "initial-power", Value: "on", Usage: "power state at start: on or off"},
			&cli.DurationFlag{Name: "power-off-delay", Usage: "how long the system reads PoweringOff before Off after a ForceOff (0: at once)"},
			&cli.DurationFlag{Name: "power-on-delay", Usage: "how long the system reads PoweringOn before On after On (0: at once)"},
			&cli.StringFlag{Name: "on-power-off", Usage: "shell command run when the emulated power goes off; the state reads Off only after it finished (e.g. stop a host's agent)"},
			&cli.StringFlag{Name: "on-power-on", Usage: "shell command run when the emulated power comes on"},
			&cli.DurationFlag{Name: "hook-timeout", Value: 30 * time.Second, Usage: "longest a power hook command may run"},
			&cli.IntFlag{Name: "max-sessions", Value: 16, Usage: "open sessions allowed at once, like a real BMC's limit"},
		},
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			password, err := bmcPassword(c.String("password-file"))
			if err != nil {
				return err
			}
			var power fencing.PowerState
			switch strings.ToLower(c.String("initial-power")) {
			case "on":
				power = fencing.On
			case "off":
				power = fencing.Off
			default:
				return fmt.Errorf("--initial-power %q: use on or off", c.String("initial-power"))
			}
			hosts := c.StringSlice("cert-host")
			if h, _, err := net.SplitHostPort(c.String("listen")); err == nil && h != "" {
				if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
					hosts = append(hosts, h)
				} else if name, err := os.Hostname(); err == nil {
					hosts = append(hosts, name)
				}
			}
			ctx, stop := signalContext()
			defer stop()
			bmc, err := bmcemu.New(bmcemu.Config{
				Username: c.String("username"), Password: password, SystemID: c.String("system-id"),
				InitialPower: power, PowerOffDelay: c.Duration("power-off-delay"), PowerOnDelay: c.Duration("power-on-delay"),
				OnPowerOff: hookCommand(ctx, log, "power-off", c.String("on-power-off"), c.Duration("hook-timeout")),
				OnPowerOn:  hookCommand(ctx, log, "power-on", c.String("on-power-on"), c.Duration("hook-timeout")),
				CertFile:   c.String("cert-out"), Hosts: hosts, MaxSessions: c.Int("max-sessions"), Log: log,
			})
			if err != nil {
				return err
			}
			if err := bmc.Start(c.String("listen")); err != nil {
				return err
			}
			printBMCTour(bmc, c)
			<-ctx.Done()
			fmt.Fprintln(os.Stderr, "\nstopping the BMC emulator...")
			return bmc.Close()
		},
	}
}

// bmcPassword reads the password from the file, or from BULWARK_BMC_PASSWORD.
func bmcPassword(file string) (string, error) {
	if file == "" {
		if p := os.Getenv("BULWARK_BMC_PASSWORD"); p != "" {
			return p, nil
		}
		return "", errors.New("give the BMC account's password with --password-file FILE (or the BULWARK_BMC_PASSWORD environment variable)")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", fmt.Errorf("--password-file %s is empty", file)
	}
	return p, nil
}

// hookCommand runs cmd through /bin/sh when the emulated power changes; nil
// when cmd is empty.
func hookCommand(ctx context.Context, log *slog.Logger, event, cmd string, timeout time.Duration) func() {
	if cmd == "" {
		return nil
	}
	return func() {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		sh := exec.CommandContext(hctx, "/bin/sh", "-c", cmd)
		sh.Env = append(os.Environ(), "BULWARK_BMC_EVENT="+event)
		out, err := sh.CombinedOutput()
		if err != nil {
			log.Error("power hook failed", "event", event, "command", cmd, "err", err, "output", strings.TrimSpace(string(out)))
			return
		}
		log.Info("power hook ran", "event", event, "command", cmd, "output", strings.TrimSpace(string(out)))
	}
}

func printBMCTour(bmc *bmcemu.BMC, c *cli.Context) {
	host, port, _ := net.SplitHostPort(bmc.Addr())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	base := "https://" + net.JoinHostPort(host, port)
	pw, pwShell, fenceAuth := "BULWARK_BMC_PASSWORD", `"$BULWARK_BMC_PASSWORD"`, `--password "$BULWARK_BMC_PASSWORD"`
	if f := c.String("password-file"); f != "" {
		pw, pwShell, fenceAuth = f, `"$(cat `+f+`)"`, "--password-script 'cat "+f+"'"
	}
	caOpt, cert := "-k", "not written (clients must skip verification; use --cert-out FILE to get a CA file)"
	if f := c.String("cert-out"); f != "" {
		caOpt, cert = "--cacert "+f, f+" (use it as the CA file)"
	}
	user := c.String("username")
	fmt.Printf(`
Redfish BMC emulator is up.
  URL:         %s
  account:     %s, password from %s
  system:      %s/redfish/v1/Systems/%s (power %s)
  certificate: %s

Try, from another shell:
  curl %s -u %s:%s %s/redfish/v1/Systems/%s
  curl %s -u %s:%s -H 'Content-Type: application/json' \
      -d '{"ResetType":"ForceOff"}' %s/redfish/v1/Systems/%s/Actions/ComputerSystem.Reset
  fence_redfish --ip %s --ipport %s --username %s %s --ssl-insecure -o status

Press Ctrl-C to stop.
`, base, user, pw, base, c.String("system-id"), bmc.Power(), cert,
		caOpt, user, pwShell, base, c.String("system-id"),
		caOpt, user, pwShell, base, c.String("system-id"),
		host, port, user, fenceAuth)
}
