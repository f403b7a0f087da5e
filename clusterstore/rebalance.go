package clusterstore

// RebalanceKey holds the rebalance run under way or the last one, and when
// the leader last checked for automatic rebalancing (api.Rebalance). It is
// not part of a Snapshot: the leader and the API read it on their own.
const RebalanceKey = Prefix + "rebalance"
