// Package network will move floating IPs with their workloads (netlink
// address add/del, gratuitous ARP / unsolicited NA, iptables DNAT), each claim
// carrying the allocation's epoch. Empty until the floating-IP issue lands.
package network
