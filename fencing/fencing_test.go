package fencing

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeDevice is a scripted Device for the pure tests of FenceHost.
type fakeDevice struct {
	name  string
	err   error      // returned by PowerOff and Check
	state PowerState // put into the evidence when err is nil
	block bool       // PowerOff waits for ctx to end
	calls int
}

func (f *fakeDevice) Name() string { return f.name }
func (f *fakeDevice) PowerState(context.Context) (PowerState, error) {
	return f.state, f.err
}
func (f *fakeDevice) PowerOff(ctx context.Context) (Evidence, error) {
	f.calls++
	if f.block {
		<-ctx.Done()
		return Evidence{}, ctx.Err()
	}
	if f.err != nil {
		return Evidence{}, f.err
	}
	now := time.Now()
	return Evidence{Device: f.name, Action: "ForceOff", PowerState: string(f.state), Started: now, Confirmed: now, Attempts: 1}, nil
}
func (f *fakeDevice) PowerOn(context.Context) error { return f.err }
func (f *fakeDevice) Check(ctx context.Context) error {
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err
}

func devErr(name string, kind error) error {
	return &DeviceError{Device: name, Op: "power off", Kind: kind, Err: errors.New("scripted")}
}

func TestFenceHostFirstLevelWins(t *testing.T) {
	a := &fakeDevice{name: "a", state: Off}
	b := &fakeDevice{name: "b", state: Off}
	ev, err := FenceHost(context.Background(), []Device{a, b}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Device != "a" || ev.Level != 1 || ev.PowerState != "Off" {
		t.Fatalf("evidence %+v", ev)
	}
	if b.calls != 0 {
		t.Fatalf("level 2 was tried although level 1 confirmed Off")
	}
}

func TestFenceHostFallsThrough(t *testing.T) {
	a := &fakeDevice{name: "bmc-a", err: devErr("bmc-a", ErrAuth)}
	b := &fakeDevice{name: "bmc-b", block: true}
	c := &fakeDevice{name: "pdu-c", state: Off}
	ev, err := Levels{a, b, c}.Fence(context.Background(), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Device != "pdu-c" || ev.Level != 3 {
		t.Fatalf("evidence %+v", ev)
	}
}

func TestFenceHostAllFailListsEveryDevice(t *testing.T) {
	a := &fakeDevice{name: "bmc-a", err: devErr("bmc-a", ErrAuth)}
	b := &fakeDevice{name: "bmc-b", block: true}
	c := &fakeDevice{name: "bmc-c", err: devErr("bmc-c", ErrNotConfirmed)}
	_, err := FenceHost(context.Background(), []Device{a, b, c}, 30*time.Millisecond)
	if err == nil {
		t.Fatal("fenced with every device failing")
	}
	for _, kind := range []error{ErrFenceFailed, ErrAuth, ErrTimeout, ErrNotConfirmed} {
		if !errors.Is(err, kind) {
			t.Errorf("error does not match %v: %v", kind, err)
		}
	}
	var fe *FenceError
	if !errors.As(err, &fe) || len(fe.Failures) != 3 {
		t.Fatalf("want a FenceError with 3 failures, got %#v", err)
	}
	for _, want := range []string{"level 1", "bmc-a", "level 2", "bmc-b", "level 3", "bmc-c"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

// A device that claims success without having read Off is not believed.
func TestFenceHostRefusesEvidenceThatIsNotOff(t *testing.T) {
	liar := &fakeDevice{name: "liar", state: PoweringOff}
	_, err := FenceHost(context.Background(), []Device{liar}, time.Second)
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("want ErrNotConfirmed, got %v", err)
	}
}

func TestFenceHostNoDevices(t *testing.T) {
	if _, err := FenceHost(context.Background(), nil, time.Second); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("want ErrNoDevice, got %v", err)
	}
}

func TestFenceHostStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	a := &fakeDevice{name: "a", block: true}
	b := &fakeDevice{name: "b", state: Off}
	_, err := FenceHost(ctx, []Device{a, b}, 0)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
	if b.calls != 0 {
		t.Fatal("a level was tried after the context ended")
	}
	if !strings.Contains(err.Error(), "level 2 not tried") {
		t.Fatalf("error does not say what was not tried: %v", err)
	}
}

func TestLevelsCheck(t *testing.T) {
	res := Levels{
		&fakeDevice{name: "ok", state: On},
		&fakeDevice{name: "bad", err: devErr("bad", ErrAuth)},
		&fakeDevice{name: "hung", block: true},
	}.Check(context.Background(), 20*time.Millisecond)
	if len(res) != 3 || res[0].Err != nil || !errors.Is(res[1].Err, ErrAuth) || !errors.Is(res[2].Err, ErrTimeout) {
		t.Fatalf("results %+v", res)
	}
	if res[2].Level != 3 || res[2].Device != "hung" {
		t.Fatalf("result %+v", res[2])
	}
}

func TestParsePowerState(t *testing.T) {
	for in, want := range map[string]PowerState{"On": On, "Off": Off, "PoweringOff": PoweringOff, "PoweringOn": PoweringOn, "Paused": Unknown, "": Unknown, "off": Unknown} {
		if got := ParsePowerState(in); got != want {
			t.Errorf("ParsePowerState(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEvidenceRecord(t *testing.T) {
	now := time.Now()
	r := Evidence{Device: "bmc", Action: "ForceOff", PowerState: "Off", Started: now, Confirmed: now.Add(time.Second), Attempts: 1, Level: 1}.Record("h1", 42)
	if r.Host != "h1" || r.Epoch != 42 || r.Device != "bmc" || r.PowerState != "Off" || r.Schema == 0 || !r.Confirmed.After(r.Started) {
		t.Fatalf("record %+v", r)
	}
}
