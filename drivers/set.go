package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bulwarkhq/bulwark/api"
)

// Set runs each workload kind through its own driver (VMs through libvirt,
// containers through containerd) behind the one Driver interface the agent
// uses. Per-workload calls go to the driver that has the workload.
type Set []Driver

var _ Driver = Set(nil)

// Name joins the drivers' names, e.g. "libvirt+containerd".
func (s Set) Name() string {
	names := make([]string, len(s))
	for i, d := range s {
		names[i] = d.Name()
	}
	return strings.Join(names, "+")
}

// Kinds is every kind some driver runs.
func (s Set) Kinds() []api.Kind {
	var out []api.Kind
	seen := map[api.Kind]bool{}
	for _, d := range s {
		for _, k := range d.Kinds() {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// For returns the driver that runs kind k.
func (s Set) For(k api.Kind) (Driver, error) {
	for _, d := range s {
		for _, dk := range d.Kinds() {
			if dk == k {
				return d, nil
			}
		}
	}
	return nil, fmt.Errorf("this host runs no %s workloads (drivers: %s)", k, s.Name())
}

// Fingerprint takes the host's capacity from the first driver and joins
// every driver's detail.
func (s Set) Fingerprint(ctx context.Context) (Fingerprint, error) {
	var out Fingerprint
	var details []string
	for i, d := range s {
		fp, err := d.Fingerprint(ctx)
		if err != nil {
			return out, fmt.Errorf("%s: %w", d.Name(), err)
		}
		if i == 0 {
			out.CPUs, out.Memory = fp.CPUs, fp.Memory
		}
		details = append(details, fp.Detail)
	}
	out.Detail = strings.Join(details, "; ")
	return out, nil
}

// Start starts the task with the driver for its kind.
func (s Set) Start(ctx context.Context, t Task) error {
	d, err := s.For(t.Spec.Kind)
	if err != nil {
		return err
	}
	return d.Start(ctx, t)
}

// owner finds the driver that has the workload.
func (s Set) owner(ctx context.Context, workload string) (Driver, Status, error) {
	for _, d := range s {
		st, err := d.Inspect(ctx, workload)
		if err == nil {
			return d, st, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, st, err
		}
	}
	return nil, Status{}, fmt.Errorf("%s: %w", workload, ErrNotFound)
}

func (s Set) Inspect(ctx context.Context, workload string) (Status, error) {
	_, st, err := s.owner(ctx, workload)
	return st, err
}

func (s Set) List(ctx context.Context) ([]Status, error) {
	var out []Status
	for _, d := range s {
		l, err := d.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name(), err)
		}
		out = append(out, l...)
	}
	return out, nil
}

func (s Set) Stop(ctx context.Context, workload string) error {
	d, _, err := s.owner(ctx, workload)
	if err != nil {
		return err
	}
	return d.Stop(ctx, workload)
}

// Destroy removes the workload from every driver that has it.
func (s Set) Destroy(ctx context.Context, workload string) error {
	var errs []error
	for _, d := range s {
		if err := d.Destroy(ctx, workload); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("%s: %w", d.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func (s Set) Close() error {
	var errs []error
	for _, d := range s {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}

// Logs returns the workload's output from the driver that has it.
func (s Set) Logs(ctx context.Context, workload string) (io.ReadCloser, error) {
	d, _, err := s.owner(ctx, workload)
	if err != nil {
		return nil, err
	}
	l, ok := d.(Logger)
	if !ok {
		return nil, fmt.Errorf("the %s driver keeps no output of %s", d.Name(), workload)
	}
	return l.Logs(ctx, workload)
}
