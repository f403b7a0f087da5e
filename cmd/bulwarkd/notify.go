package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
)

// sdNotify sends a state line to the service manager with systemd's
// sd_notify protocol: one datagram to the socket named by $NOTIFY_SOCKET
// ("@name" is an abstract socket; Go's net package maps it). It does
// nothing, and reports false, when the variable is unset, that is when not
// started by systemd as a Type=notify service.
func sdNotify(state string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify %s: %w", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify %s: %w", addr, err)
	}
	return true, nil
}

// notifier returns a function that sends state to systemd and logs the
// outcome; it is what server.Config.OnReady and nodeagent.Config.OnReady
// get (with "READY=1").
func notifier(log *slog.Logger, state string) func() {
	return func() {
		sent, err := sdNotify(state)
		switch {
		case err != nil:
			log.Warn("could not notify systemd", "state", state, "err", err)
		case sent:
			log.Debug("notified systemd", "state", state)
		}
	}
}
