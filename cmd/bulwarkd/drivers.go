package main

import (
	"errors"
	"fmt"

	"github.com/bulwarkhq/bulwark/config"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/drivers/containerd"
	"github.com/bulwarkhq/bulwark/drivers/libvirt"
)

// agentDrivers builds the agent's drivers from its configuration: libvirt
// for VMs unless libvirt.uri is "none", containerd for containers when
// containerd.address is set.
func agentDrivers(cfg *config.Agent, host string) (drivers.Set, error) {
	var set drivers.Set
	if cfg.LibvirtURI != "none" {
		d, err := libvirt.New(libvirt.Config{URI: cfg.LibvirtURI, Host: host, DomainType: cfg.DomainType, ConsoleLogDir: cfg.ConsoleLogDir})
		if err != nil {
			return nil, fmt.Errorf("libvirt %s: %w", cfg.LibvirtURI, err)
		}
		set = append(set, d)
	}
	if cfg.ContainerdAddress != "" {
		d, err := containerd.New(containerd.Config{Address: cfg.ContainerdAddress, Host: host, StateDir: cfg.ContainerdStateDir, Netns: cfg.Netns})
		if err != nil {
			set.Close()
			return nil, err
		}
		set = append(set, d)
	}
	if len(set) == 0 {
		return nil, errors.New("no driver: set libvirt.uri or containerd.address (this host would run nothing)")
	}
	return set, nil
}
