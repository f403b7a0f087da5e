// Package network is what the node agent does to a host's network for the
// workloads it runs: put floating IPs (VIPs) on an interface and take them
// off (netlink), tell the segment where a VIP now lives (gratuitous ARP for
// IPv4, unsolicited neighbour advertisements for IPv6) and forward a VIP's
// ports to a workload (iptables DNAT in a Bulwark-owned chain).
//
// Every operation works on a Host: a named network namespace (how a
// simulated host runs on one machine, see package topo) or the caller's own
// namespace. Netlink calls go to sockets opened inside the namespace;
// anything that needs a thread in the namespace (raw sockets, iptables
// child processes, listeners in tests) runs through Host.Do.
//
// See docs/networking-host.md for the announce timing and the iptables
// layout.
package network
