package devcluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/fencing"
	"github.com/bulwarkhq/bulwark/fencing/bmcemu"
)

// Faults the dev cluster can inject into one host.
const (
	// FaultCrash kills the agent process (its workloads die with it: the
	// test driver's domains live inside it); the host's power stays on.
	FaultCrash = "crash"
	// FaultHang freezes the agent (SIGSTOP): it holds its workloads but
	// answers nothing.
	FaultHang = "hang"
	// FaultPartition cuts only the agent's connection to etcd; it keeps
	// running, so it must fence itself.
	FaultPartition = "partition"
	// FaultBMCDown makes the host's BMC unreachable.
	FaultBMCDown = "bmc-down"
	// FaultHeal undoes all of the above (a crashed agent on a powered host
	// is started again).
	FaultHeal = "heal"
)

// Fault injects a fault into a simulated host.
func (c *Cluster) Fault(host, fault string) error {
	h, ok := c.Host(host)
	if !ok {
		return fmt.Errorf("no host %q", host)
	}
	c.mu.Lock()
	cmd := h.cmd
	c.mu.Unlock()
	pid := 0
	if cmd != nil && cmd.Process != nil {
		pid = cmd.Process.Pid
	}
	switch fault {
	case FaultCrash:
		c.killHost(host)
	case FaultHang:
		if pid != 0 {
			return syscall.Kill(-pid, syscall.SIGSTOP)
		}
	case FaultPartition:
		h.proxy.setCut(true)
	case FaultBMCDown:
		h.BMC.SetFault(bmcemu.Fault{Unreachable: true})
	case FaultHeal:
		h.BMC.SetFault(bmcemu.Fault{})
		h.proxy.setCut(false)
		if pid != 0 {
			_ = syscall.Kill(-pid, syscall.SIGCONT)
		}
		if h.BMC.Power() == fencing.On {
			return c.StartHost(host) // no-op if it runs
		}
	default:
		return fmt.Errorf("unknown fault %q: use crash, hang, partition, bmc-down or heal", fault)
	}
	c.cfg.Log.Warn("dev fault injected", "host", host, "fault", fault)
	return nil
}

// wrapHandler adds POST /v1/dev/fault to the dev server's API.
func (c *Cluster) wrapHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/dev/fault" {
			next.ServeHTTP(w, r)
			return
		}
		reply := func(status int, v any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(v)
		}
		if r.Method != http.MethodPost {
			reply(http.StatusMethodNotAllowed, api.Error{Message: "use POST", Code: api.CodeInvalid})
			return
		}
		var req struct {
			Host  string `json:"host"`
			Fault string `json:"fault"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			reply(http.StatusBadRequest, api.Error{Message: "invalid fault request: " + err.Error(), Code: api.CodeInvalid})
			return
		}
		if _, ok := c.Host(req.Host); !ok {
			reply(http.StatusNotFound, api.Error{Message: fmt.Sprintf("no simulated host %q", req.Host), Code: api.CodeNotFound})
			return
		}
		if err := c.Fault(req.Host, req.Fault); err != nil {
			reply(http.StatusBadRequest, api.Error{Message: err.Error(), Code: api.CodeInvalid})
			return
		}
		reply(http.StatusOK, map[string]string{"host": req.Host, "fault": req.Fault, "status": "injected"})
	})
}
