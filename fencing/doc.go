// Package fencing will power off lost hosts through their BMCs (Redfish,
// gofish) and record the evidence before any recovery starts; it will also
// hold the Redfish BMC emulator behind `bulwarkd bmc`. Empty until the
// failover issue lands; the data model (api.FenceRecord, the
// /bulwark/v1/fencing/ prefix) is already in place.
package fencing
