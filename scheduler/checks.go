package scheduler

import (
	"fmt"
	"strings"

	"github.com/bulwarkhq/bulwark/api"
)

// A checker is one feasibility rule (a filter, in kube-scheduler's terms).
// ok runs for every host considered, so it must be cheap and must not
// allocate; why runs only for hosts ok rejected, when a reason is wanted.
type checker interface {
	ok(t *Tracker, h int, c *candidate) bool
	// why returns the category the rejection is counted under in a summary
	// ("cpu", "label rack=r1") and the reason for this host.
	why(t *Tracker, h int, c *candidate) (category, reason string)
}

const reasonNotReady = "host is not ready"

// readyCheck rejects hosts without a live heartbeat.
type readyCheck struct{}

func (readyCheck) ok(t *Tracker, h int, _ *candidate) bool { return t.ready[h] }

func (readyCheck) why(*Tracker, int, *candidate) (string, string) {
	return "not ready", reasonNotReady
}

// ReasonMaintenance is the maintenance checker's verdict.
const ReasonMaintenance = "host is in maintenance"

// maintenanceCheck rejects hosts an operator put in maintenance.
type maintenanceCheck struct{}

func (maintenanceCheck) ok(t *Tracker, h int, _ *candidate) bool { return !t.maint[h] }

func (maintenanceCheck) why(*Tracker, int, *candidate) (string, string) {
	return "maintenance", ReasonMaintenance
}

// avoidCheck keeps a workload off the host that just gave up on it (it
// failed there RestartLimit times), for its next placement.
type avoidCheck struct{}

func (avoidCheck) ok(_ *Tracker, h int, c *candidate) bool { return c.avoid != int32(h) }

func (avoidCheck) why(*Tracker, int, *candidate) (string, string) {
	return "failed here", "the workload just failed here repeatedly; trying other hosts first"
}

// kindCheck keeps a workload on hosts whose agent runs its kind (VMs need
// libvirt, containers containerd).
type kindCheck struct{}

func (kindCheck) ok(t *Tracker, h int, c *candidate) bool { return t.runsKind(h, c.kind) }

func (kindCheck) why(_ *Tracker, _ int, c *candidate) (string, string) {
	return "no " + string(c.kind) + " driver", "this host runs no " + string(c.kind) + "s"
}

// labelCheck enforces the workload's hard label constraints (Require).
type labelCheck struct{}

func (labelCheck) ok(_ *Tracker, h int, c *candidate) bool {
	for i := range c.require {
		if !c.require[i].ok(h) {
			return false
		}
	}
	return true
}

func (labelCheck) why(_ *Tracker, h int, c *candidate) (string, string) {
	for i := range c.require {
		if m := &c.require[i]; !m.ok(h) {
			s := "label " + m.c.String()
			return s, s + " not met"
		}
	}
	return "", ""
}

// antiAffinityCheck keeps two members of a group off one host.
type antiAffinityCheck struct{}

func (antiAffinityCheck) ok(_ *Tracker, h int, c *candidate) bool {
	return c.group < 0 || c.bits[h>>6]&(1<<(uint(h)&63)) == 0
}

func (antiAffinityCheck) why(t *Tracker, h int, c *candidate) (string, string) {
	other := "a member"
	if ai := t.memberOn(h, c.group); ai >= 0 {
		other = t.allocs[ai].name
	}
	return "anti-affinity group " + c.groupName,
		fmt.Sprintf("anti-affinity: %s of group %s already here", other, c.groupName)
}

// resourceCheck compares CPU and memory with what is free of the host's
// allocatable capacity (capacity minus the host reservation).
type resourceCheck struct{}

func (resourceCheck) ok(t *Tracker, h int, c *candidate) bool {
	return resourcesOK(t, h, c)
}

func resourcesOK(t *Tracker, h int, c *candidate) bool {
	return c.cpus <= t.freeCPU[h] && c.mem <= t.freeMem[h]
}

func (resourceCheck) why(t *Tracker, h int, c *candidate) (string, string) {
	return resourceReason(t.freeCPU[h], t.freeMem[h], c.cpus, c.mem)
}

// resourceReason says which resources are short, or returns "" if none.
func resourceReason(freeCPU int, freeMem api.ByteSize, cpus int, mem api.ByteSize) (category, reason string) {
	var cats, why []string
	if cpus > freeCPU {
		cats = append(cats, "cpu")
		why = append(why, fmt.Sprintf("cpu: needs %d, %d free", cpus, max(freeCPU, 0)))
	}
	if mem > freeMem {
		cats = append(cats, "memory")
		why = append(why, fmt.Sprintf("memory: needs %s, %s free", mem.Human(), max(freeMem, 0).Human()))
	}
	return strings.Join(cats, " and "), strings.Join(why, "; ")
}

// feasible runs the checker stack on host h.
func (t *Tracker) feasible(h int, c *candidate) bool {
	for _, ck := range t.checks {
		if !ck.ok(t, h, c) {
			return false
		}
	}
	return true
}

// check runs the checker stack on host h and says why the first checker
// that rejects it does; rank is that checker's place in the stack.
func (t *Tracker) check(h int, c *candidate) (ok bool, rank int, reason string) {
	ok, rank, _, reason = t.checkCategory(h, c)
	return ok, rank, reason
}

func (t *Tracker) checkCategory(h int, c *candidate) (ok bool, rank int, category, reason string) {
	for i, ck := range t.checks {
		if !ck.ok(t, h, c) {
			cat, why := ck.why(t, h, c)
			return false, i, cat, why
		}
	}
	return true, -1, "", ""
}
