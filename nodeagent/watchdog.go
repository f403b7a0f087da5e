package nodeagent

import (
	"os"
)

// feedWatchdog pets the hardware watchdog, opening it on first use. Errors
// are logged once per kind; a watchdog that cannot be fed resets the host,
// which is the safe failure.
func (a *Agent) feedWatchdog() {
	if a.cfg.WatchdogDevice == "" {
		return
	}
	if a.watchdog == nil {
		f, err := os.OpenFile(a.cfg.WatchdogDevice, os.O_WRONLY, 0)
		if err != nil {
			if !a.watchdogWarned {
				a.log.Error("cannot open the watchdog device", "device", a.cfg.WatchdogDevice, "err", err)
				a.watchdogWarned = true
			}
			return
		}
		a.log.Info("feeding the hardware watchdog", "device", a.cfg.WatchdogDevice)
		a.watchdog = f
	}
	// Any write resets the timer; never write 'V', the magic close that
	// would disarm it.
	if _, err := a.watchdog.Write([]byte{0}); err != nil && !a.watchdogWarned {
		a.log.Error("cannot feed the watchdog", "device", a.cfg.WatchdogDevice, "err", err)
		a.watchdogWarned = true
	}
}
