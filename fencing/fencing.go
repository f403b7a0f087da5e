// Package fencing powers off lost hosts through their fence devices (BMCs)
// and returns the evidence that they are off, so that nothing a lost host ran
// is restarted elsewhere until that host is known to be dead (step 3 of the
// safety protocol).
//
// A Device is one way to switch one host off: a Redfish BMC (package
// fencing/redfish), later perhaps a PDU. A host has Levels: its devices in the
// order they are tried. FenceHost tries them in turn and succeeds only with a
// device that has read the power state back as Off; "the BMC accepted the
// command" is never proof. Check is the cheap health probe the server runs
// continuously, so a wrong BMC password is found long before a failure needs
// it.
//
// Package fencing/bmcemu is a Redfish BMC emulator for the dev cluster, tests
// and labs (`bulwarkd bmc`).
package fencing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// PowerState is a host's power state as its fence device reports it.
type PowerState string

// The power states a device can report. Anything a device reports that is not
// one of the first four is Unknown, and Unknown is never Off.
const (
	On          PowerState = "On"
	Off         PowerState = "Off"
	PoweringOn  PowerState = "PoweringOn"
	PoweringOff PowerState = "PoweringOff"
	Unknown     PowerState = "Unknown"
)

// ParsePowerState maps a device's (Redfish) power state string to a
// PowerState; anything unrecognised (including "Paused") is Unknown.
func ParsePowerState(s string) PowerState {
	switch p := PowerState(s); p {
	case On, Off, PoweringOn, PoweringOff:
		return p
	}
	return Unknown
}

// Device switches one host's power. Implementations honour ctx in every
// method, leave nothing running when a method returns, and return errors that
// match (errors.Is) one of the Err* kinds below.
type Device interface {
	// Name identifies the device in evidence, logs and errors. It never
	// contains a credential.
	Name() string
	// PowerState reads the current power state.
	PowerState(ctx context.Context) (PowerState, error)
	// PowerOff forces the power off and returns only after it has read the
	// power state back as Off. A nil error always comes with Evidence whose
	// PowerState is "Off"; otherwise the error matches ErrNotConfirmed (the
	// command may have been accepted but Off was never read) or the kind of
	// failure that stopped it.
	PowerOff(ctx context.Context) (Evidence, error)
	// PowerOn switches the power on (used to bring a fenced host back).
	PowerOn(ctx context.Context) error
	// Check logs in and reads the power state without changing anything: the
	// health probe of a fence device.
	Check(ctx context.Context) error
}

// Evidence is the proof that a host was powered off, as stored (through
// Record) before any recovery of its workloads starts.
type Evidence struct {
	// Device is the Name of the device that confirmed the power-off.
	Device string
	// Action is what was sent, e.g. "ForceOff".
	Action string
	// PowerState is the state read back from the device: always "Off" in
	// evidence of a successful fence.
	PowerState string
	// Started is when the fencing attempt on this device began.
	Started time.Time
	// Confirmed is when the device's answer reading Off arrived.
	Confirmed time.Time
	// Attempts is how many times Action was sent to the device.
	Attempts int
	// Level is the 1-based position of the device in the host's levels;
	// set by FenceHost, 0 when a Device is used directly.
	Level int
}

// Record turns the evidence into the record stored at
// /bulwark/v1/fencing/<host>; epoch is the store revision at which the host
// was declared lost.
func (e Evidence) Record(host string, epoch int64) api.FenceRecord {
	return api.FenceRecord{
		Schema: api.SchemaVersion, Host: host, Device: e.Device, Action: e.Action,
		PowerState: e.PowerState, Started: e.Started, Confirmed: e.Confirmed, Epoch: epoch,
	}
}

// Kinds of failure. Every error a Device or FenceHost returns matches at least
// one of them with errors.Is, so callers can branch without parsing text.
var (
	// ErrUnreachable: no connection to the device (refused, reset, no route,
	// closed before answering).
	ErrUnreachable = errors.New("unreachable")
	// ErrAuth: the device refused the credentials (HTTP 401/403).
	ErrAuth = errors.New("authentication failed")
	// ErrTimeout: the device did not answer in time.
	ErrTimeout = errors.New("timed out")
	// ErrTLS: the device's certificate could not be verified, or it does not
	// speak TLS.
	ErrTLS = errors.New("TLS verification failed")
	// ErrDevice: the device answered, but with an error (HTTP 5xx, 4xx other
	// than auth) or with something that is not what the protocol promises.
	ErrDevice = errors.New("device error")
	// ErrNotConfirmed: the power change was requested (perhaps accepted) but
	// the device never reported the new state before the deadline. For a
	// power-off this means the host must still be treated as running.
	ErrNotConfirmed = errors.New("power state change not confirmed")
	// ErrConfig: the device's configuration is unusable (bad endpoint, no
	// password, a system ID the BMC does not have).
	ErrConfig = errors.New("bad configuration")
	// ErrNoDevice: the host has no fence device configured.
	ErrNoDevice = errors.New("no fence device configured")
	// ErrFenceFailed: every fence device of a host failed; the error is a
	// *FenceError listing each device's failure.
	ErrFenceFailed = errors.New("fencing failed")
)

// DeviceError is a failure of one operation on one device. It matches its
// Kind and its cause with errors.Is.
type DeviceError struct {
	Device string // the device's Name
	Op     string // "power off", "power on", "power state", "check", "connect"
	Kind   error  // one of the Err* kinds
	// Status is the HTTP status the device answered with, 0 when it did not
	// answer or the protocol has none.
	Status int
	Err    error // the cause, credentials removed; may be nil
}

func (e *DeviceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fence device %s: %s: %v", e.Device, e.Op, e.Kind)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the kind and the cause.
func (e *DeviceError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// FenceError is returned by FenceHost when no device confirmed the power-off.
// It matches ErrFenceFailed and, through Failures, the kind of every device's
// failure (errors.Is(err, ErrAuth) is true when any device refused the
// credentials).
type FenceError struct {
	// Failures holds one error per level tried, in order, plus the context's
	// error when it ended before every level was tried.
	Failures []error
}

func (e *FenceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: ", ErrFenceFailed)
	for i, f := range e.Failures {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	return b.String()
}

// Is reports whether target is ErrFenceFailed.
func (e *FenceError) Is(target error) bool { return target == ErrFenceFailed }

// Unwrap returns every device's failure.
func (e *FenceError) Unwrap() []error { return e.Failures }

// Levels is the ordered list of one host's fence devices: level 1 first. The
// next level is tried only when the one before failed.
type Levels []Device

// Fence is FenceHost over these levels.
func (l Levels) Fence(ctx context.Context, perDeviceTimeout time.Duration) (Evidence, error) {
	return FenceHost(ctx, l, perDeviceTimeout)
}

// CheckResult is the outcome of one device's health probe.
type CheckResult struct {
	Level   int    // 1-based position in the levels
	Device  string // the device's Name
	Checked time.Time
	Err     error // nil when the device answered with a power state
}

// Check probes every device in order (one at a time, each bounded by
// perDeviceTimeout when it is positive) and returns one result per device.
func (l Levels) Check(ctx context.Context, perDeviceTimeout time.Duration) []CheckResult {
	out := make([]CheckResult, 0, len(l))
	for i, d := range l {
		dctx, cancel := withTimeout(ctx, perDeviceTimeout)
		err := d.Check(dctx)
		cancel()
		if err != nil && dctx.Err() == context.DeadlineExceeded && !errors.Is(err, ErrTimeout) {
			err = &DeviceError{Device: d.Name(), Op: "check", Kind: ErrTimeout, Err: err}
		}
		out = append(out, CheckResult{Level: i + 1, Device: d.Name(), Checked: time.Now(), Err: err})
	}
	return out
}

// FenceHost powers a host off through its levels: each device in order, each
// bounded by perDeviceTimeout (when positive) and by ctx, moving on to the
// next when one fails. It returns the first device's Evidence that confirmed
// Off, with Level set. When every device failed, the error is a *FenceError
// that lists each failure; with no devices it is ErrNoDevice. It never
// reports success without a device having read the power state as Off.
func FenceHost(ctx context.Context, levels []Device, perDeviceTimeout time.Duration) (Evidence, error) {
	if len(levels) == 0 {
		return Evidence{}, ErrNoDevice
	}
	var failures []error
	for i, d := range levels {
		if err := ctx.Err(); err != nil {
			what := fmt.Sprintf("level %d", i+1)
			if i+1 < len(levels) {
				what = fmt.Sprintf("levels %d-%d", i+1, len(levels))
			}
			failures = append(failures, fmt.Errorf("%s not tried: %w", what, err))
			break
		}
		ev, err := powerOff(ctx, d, perDeviceTimeout)
		if err == nil {
			ev.Level = i + 1
			return ev, nil
		}
		failures = append(failures, fmt.Errorf("level %d: %w", i+1, err))
	}
	return Evidence{}, &FenceError{Failures: failures}
}

// powerOff runs one device's PowerOff under its own deadline and refuses
// evidence that does not say Off, whatever the device claims.
func powerOff(ctx context.Context, d Device, timeout time.Duration) (Evidence, error) {
	dctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	ev, err := d.PowerOff(dctx)
	if err != nil {
		if dctx.Err() == context.DeadlineExceeded && ctx.Err() == nil &&
			!errors.Is(err, ErrTimeout) && !errors.Is(err, ErrNotConfirmed) {
			err = &DeviceError{Device: d.Name(), Op: "power off", Kind: ErrTimeout, Err: err}
		}
		return Evidence{}, err
	}
	if ev.PowerState != string(Off) {
		return Evidence{}, &DeviceError{Device: d.Name(), Op: "power off", Kind: ErrNotConfirmed,
			Err: fmt.Errorf("device reported success with power state %q", ev.PowerState)}
	}
	if ev.Device == "" {
		ev.Device = d.Name()
	}
	return ev, nil
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
