package scheduler

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/bulwarkhq/bulwark/api"
)

// Tracker is the per-evaluation index the engine places against: every
// host's free allocatable resources, the allocations on each host, the hosts
// of every anti-affinity group and columns of host label values. The engine
// and the plan applier use it alike, so they cannot disagree on what fits.
//
// A Tracker is built from a State and then changed only through Add and
// Remove; the State itself is never modified, but it is read lazily (the
// priority and group of a placed workload are looked up when first needed),
// so it must not change while the Tracker is in use. A Tracker is not safe
// for concurrent use.
type Tracker struct {
	st       *State
	settings api.Settings
	avoid    map[string]string

	// Hosts, by index, ordered by name.
	nodes     []*NodeInfo
	index     map[string]int32
	ready     []bool
	maint     []bool  // in maintenance: takes nothing new
	readyList []int32 // indexes of ready hosts, ascending
	capCPU    []int
	capMem    []api.ByteSize
	freeCPU   []int
	freeMem   []api.ByteSize
	onHost    [][]int32 // allocation indexes on each host, unordered

	// allocs holds every allocation the tracker has seen; removed ones stay
	// as dead records. The first nBase come from the State.
	allocs   []allocation
	nBase    int
	unhosted []int32 // live allocations on unregistered hosts
	added    map[string]int32

	groups    map[string]int32
	groupList []group
	// groupNames lists the workloads of each anti-affinity group, from
	// State.Workloads, built on first use.
	groupNames map[string][]string
	columns    map[string]*labelColumn

	checks  []checker
	scorers []scorer

	// Shared resources, built on first use (shared.go).
	volHolders     map[string]volHolder
	vipsByWorkload map[string][]vipNeed

	// Admission control, computed on first use: the N largest ready hosts
	// and the ready hosts that survive them.
	lostReady bool
	lost      []bool
	lostList  []int32
	survivors []int32

	// Scratch space, reused between calls.
	items   []simItem
	simCPU  []int
	simMem  []api.ByteSize
	touched []int32
	cands   []int32
}

// allocation is one workload on one host, as the tracker keeps it. group,
// prio and allocDeleting are valid once allocResolved is set: see meta.
type allocation struct {
	name  string
	host  int32 // -1: the host is not registered
	group int32 // -1: no anti-affinity group
	prio  int32 // notPreemptible for allocations of unknown workloads
	flags uint8
	cpus  int
	mem   api.ByteSize
}

const (
	allocResolved uint8 = 1 << iota
	allocDeleting
	allocRemoved
)

// notPreemptible is above every valid priority.
const notPreemptible = math.MaxInt32

// group is an anti-affinity group. It is indexed (bits, members) only once
// a workload of the group is placed or checked: most groups never are in
// an evaluation, and indexing costs a lookup per member.
type group struct {
	name string
	// bits has one bit per host holding a member; nil until indexed.
	bits []uint64
	// members are the live allocations of the group once indexed; before,
	// added holds those added since the tracker was built.
	members []int32
	added   []int32
	spreads []*spreadIndex
}

// spreadIndex counts the members of a group per value of a label.
type spreadIndex struct {
	col    *labelColumn
	counts []int32 // by value id
}

// labelColumn is one label key's value on every host, interned, so that the
// checkers and scorers compare small integers instead of looking up maps.
type labelColumn struct {
	key     string
	ids     []int32 // by host; -1: the host lacks the label
	values  []string
	ready   []int32 // ready hosts per value id
	byValue map[string]int32
}

// NewTracker indexes st. Allocations on hosts that are not registered take
// no room anywhere; allocations on hosts that are not ready still take room
// there.
func NewTracker(st *State) *Tracker {
	t := &Tracker{
		st:       st,
		settings: st.Settings,
		avoid:    st.Avoid,
		added:    make(map[string]int32),
		groups:   make(map[string]int32),
		columns:  make(map[string]*labelColumn),
		checks:   []checker{readyCheck{}, maintenanceCheck{}, kindCheck{}, avoidCheck{}, labelCheck{}, vipCheck{}, antiAffinityCheck{}, resourceCheck{}},
		scorers:  []scorer{strategyScore{spread: st.Settings.Strategy == api.StrategySpread}, preferenceScore{}, spreadScore{}},
	}
	t.indexNodes(st.Nodes)
	t.indexAllocations(st)
	return t
}

func (t *Tracker) indexNodes(nodes []NodeInfo) {
	order := make([]int32, len(nodes))
	sorted := true
	for i := range order {
		order[i] = int32(i)
		if i > 0 && nodes[i-1].Node.Name >= nodes[i].Node.Name {
			sorted = false
		}
	}
	if !sorted {
		sort.SliceStable(order, func(i, j int) bool { return nodes[order[i]].Node.Name < nodes[order[j]].Node.Name })
	}
	n := len(nodes)
	t.nodes = make([]*NodeInfo, 0, n)
	t.index = make(map[string]int32, n)
	for _, i := range order {
		ni := &nodes[i]
		if _, dup := t.index[ni.Node.Name]; dup {
			continue
		}
		t.index[ni.Node.Name] = int32(len(t.nodes))
		t.nodes = append(t.nodes, ni)
	}
	n = len(t.nodes)
	t.ready = make([]bool, n)
	t.maint = make([]bool, n)
	t.capCPU = make([]int, n)
	t.capMem = make([]api.ByteSize, n)
	t.freeCPU = make([]int, n)
	t.freeMem = make([]api.ByteSize, n)
	t.onHost = make([][]int32, n)
	for h, ni := range t.nodes {
		t.ready[h] = ni.Ready
		t.maint[h] = ni.Maintenance
		if ni.Ready {
			t.readyList = append(t.readyList, int32(h))
		}
		t.capCPU[h], t.capMem[h] = Allocatable(ni.Node, t.settings)
		t.freeCPU[h], t.freeMem[h] = t.capCPU[h], t.capMem[h]
	}
}

// indexAllocations takes the resources of every allocation. It reads only
// State.Allocations: joining each with its workload record costs a map
// lookup per allocation, so that is left to meta, for the few allocations
// that preemption or anti-affinity look at.
func (t *Tracker) indexAllocations(st *State) {
	t.allocs = make([]allocation, 0, len(st.Allocations))
	perHost := make([]int32, len(t.nodes))
	for name, a := range st.Allocations {
		al := allocation{name: name, host: -1, group: -1, cpus: a.CPUs, mem: a.Memory}
		if h, ok := t.index[a.Host]; ok {
			al.host = h
			perHost[h]++
		}
		t.allocs = append(t.allocs, al)
	}
	t.nBase = len(t.allocs)
	// One backing array for every host's list; a host that later gains an
	// allocation reallocates only its own list.
	backing := make([]int32, len(t.allocs))
	off := 0
	for h, c := range perHost {
		t.onHost[h] = backing[off : off : off+int(c)]
		off += int(c)
	}
	for i := range t.allocs {
		a := &t.allocs[i]
		if a.host < 0 {
			t.unhosted = append(t.unhosted, int32(i))
			continue
		}
		t.onHost[a.host] = append(t.onHost[a.host], int32(i))
		t.freeCPU[a.host] -= a.cpus
		t.freeMem[a.host] -= a.mem
	}
}

// meta returns allocation ai with its workload's priority, group and
// deletion mark filled in from State.Workloads.
func (t *Tracker) meta(ai int32) *allocation {
	a := &t.allocs[ai]
	if a.flags&allocResolved != 0 {
		return a
	}
	a.flags |= allocResolved
	a.prio, a.group = notPreemptible, -1
	if w, ok := t.st.Workloads[a.name]; ok {
		a.prio = int32(w.Priority)
		if w.Deleting {
			a.flags |= allocDeleting
		}
		if w.AntiAffinity != "" {
			a.group = t.groupID(w.AntiAffinity)
		}
	}
	return a
}

// lookup finds the live allocation of a workload.
func (t *Tracker) lookup(name string) (int32, bool) {
	if ai, ok := t.added[name]; ok {
		return ai, true
	}
	return t.lookupBase(name)
}

// lookupBase finds the live allocation of a workload that comes from the
// State.
func (t *Tracker) lookupBase(name string) (int32, bool) {
	a, ok := t.st.Allocations[name]
	if !ok {
		return -1, false
	}
	list := t.unhosted
	if h, ok := t.index[a.Host]; ok {
		list = t.onHost[h]
	}
	for _, ai := range list {
		if int(ai) < t.nBase && t.allocs[ai].name == name {
			return ai, true
		}
	}
	return -1, false
}

func (t *Tracker) groupID(name string) int32 {
	if id, ok := t.groups[name]; ok {
		return id
	}
	id := int32(len(t.groupList))
	t.groups[name] = id
	t.groupList = append(t.groupList, group{name: name})
	return id
}

// groupBits returns the group's host bitmap, indexing the group first if
// need be.
func (t *Tracker) groupBits(gid int32) []uint64 {
	if g := &t.groupList[gid]; g.bits != nil {
		return g.bits
	}
	if t.groupNames == nil {
		t.groupNames = make(map[string][]string)
		for name, w := range t.st.Workloads {
			if w.AntiAffinity != "" {
				t.groupNames[w.AntiAffinity] = append(t.groupNames[w.AntiAffinity], name)
			}
		}
	}
	name := t.groupList[gid].name
	var members []int32
	for _, w := range t.groupNames[name] {
		if ai, ok := t.lookupBase(w); ok && t.meta(ai).group == gid {
			members = append(members, ai)
		}
	}
	g := &t.groupList[gid] // meta may have grown groupList
	g.members, g.added = append(members, g.added...), nil
	g.bits = make([]uint64, (len(t.nodes)+63)/64+1)
	for _, ai := range g.members {
		if h := t.allocs[ai].host; h >= 0 {
			g.bits[h>>6] |= 1 << (uint(h) & 63)
		}
	}
	return g.bits
}

// column returns the label column for key, building it on first use.
func (t *Tracker) column(key string) *labelColumn {
	if c, ok := t.columns[key]; ok {
		return c
	}
	c := &labelColumn{key: key, ids: make([]int32, len(t.nodes)), byValue: make(map[string]int32)}
	for h, ni := range t.nodes {
		v, ok := ni.Node.Labels[key]
		if !ok {
			c.ids[h] = -1
			continue
		}
		id, seen := c.byValue[v]
		if !seen {
			id = int32(len(c.values))
			c.byValue[v] = id
			c.values = append(c.values, v)
			c.ready = append(c.ready, 0)
		}
		c.ids[h] = id
		if t.ready[h] && !t.maint[h] {
			c.ready[id]++
		}
	}
	t.columns[key] = c
	return c
}

// spreadIndex returns the member counts of group gid per value of key.
func (t *Tracker) spreadIndex(gid int32, key string) *spreadIndex {
	t.groupBits(gid)
	g := &t.groupList[gid]
	for _, s := range g.spreads {
		if s.col.key == key {
			return s
		}
	}
	col := t.column(key)
	s := &spreadIndex{col: col, counts: make([]int32, len(col.values))}
	for _, ai := range g.members {
		if h := t.allocs[ai].host; h >= 0 {
			if v := col.ids[h]; v >= 0 {
				s.counts[v]++
			}
		}
	}
	g.spreads = append(g.spreads, s)
	return s
}

// runsKind reports whether host h runs workloads of kind k. A host that
// registered no kinds runs VMs only; an empty kind is a VM.
func (t *Tracker) runsKind(h int, k api.Kind) bool {
	kinds := t.nodes[h].Node.Kinds
	if k == "" {
		k = api.KindVM
	}
	if len(kinds) == 0 {
		return k == api.KindVM
	}
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Host returns the index of a host by name.
func (t *Tracker) host(name string) (int, bool) {
	h, ok := t.index[name]
	return int(h), ok
}

// Fits reports whether w fits on host now, and if not, why: the engine's
// whole checker stack (ready, not in maintenance, label constraints,
// anti-affinity, resources against allocatable capacity). It does not apply admission control, which
// is a decision about the whole cluster, not a property of one host.
func (t *Tracker) Fits(host string, w *api.Workload) (bool, string) {
	h, ok := t.host(host)
	if !ok {
		return false, fmt.Sprintf("host %s is not registered", host)
	}
	if ai, placed := t.lookup(w.Name); placed {
		return false, fmt.Sprintf("%s is already placed on %s", w.Name, t.hostName(t.allocs[ai].host))
	}
	if why := t.volumeConflict(w); why != "" {
		return false, why
	}
	c, err := t.candidate(w, false)
	if err != nil {
		return false, "invalid placement: " + err.Error()
	}
	if ok, _, why := t.check(h, c); !ok {
		return false, why
	}
	return true, ""
}

// Add records w as placed on host, taking its resources there. It does not
// check that w fits: call Fits first.
func (t *Tracker) Add(host string, w *api.Workload) error {
	h, ok := t.host(host)
	if !ok {
		return fmt.Errorf("add %s: host %s is not registered", w.Name, host)
	}
	if _, placed := t.lookup(w.Name); placed {
		return fmt.Errorf("add %s: already placed", w.Name)
	}
	group := int32(-1)
	if w.AntiAffinity != "" {
		group = t.groupID(w.AntiAffinity)
	}
	var flags uint8
	if w.Deleting {
		flags |= allocDeleting
	}
	t.add(h, allocation{name: w.Name, group: group, prio: int32(w.Priority), flags: flags, cpus: w.CPUs, mem: w.Memory})
	t.claimVolumes(w, host)
	return nil
}

// Remove forgets the allocation of the named workload, freeing its
// resources. It reports whether there was one.
func (t *Tracker) Remove(workload string) bool {
	ai, ok := t.lookup(workload)
	if !ok {
		return false
	}
	t.remove(ai)
	return true
}

// Free returns the allocatable resources not yet taken on host; they are
// negative on an overcommitted host.
func (t *Tracker) Free(host string) (cpus int, mem api.ByteSize, ok bool) {
	h, ok := t.host(host)
	if !ok {
		return 0, 0, false
	}
	return t.freeCPU[h], t.freeMem[h], true
}

func (t *Tracker) hostName(h int32) string {
	if h < 0 {
		return "an unregistered host"
	}
	return t.nodes[h].Node.Name
}

// add appends an allocation on host h, with its group and priority
// resolved, and updates every index.
func (t *Tracker) add(h int, a allocation) int32 {
	a.host = int32(h)
	a.flags |= allocResolved
	ai := int32(len(t.allocs))
	t.allocs = append(t.allocs, a)
	t.added[a.name] = ai
	t.onHost[h] = append(t.onHost[h], ai)
	t.freeCPU[h] -= a.cpus
	t.freeMem[h] -= a.mem
	if a.group < 0 {
		return ai
	}
	g := &t.groupList[a.group]
	if g.bits == nil {
		g.added = append(g.added, ai)
		return ai
	}
	g.members = append(g.members, ai)
	g.bits[h>>6] |= 1 << (uint(h) & 63)
	for _, s := range g.spreads {
		if v := s.col.ids[h]; v >= 0 {
			s.counts[v]++
		}
	}
	return ai
}

// remove takes a live allocation away and updates every index.
func (t *Tracker) remove(ai int32) {
	a := t.meta(ai)
	if a.flags&allocRemoved != 0 {
		return
	}
	a.flags |= allocRemoved
	if int(ai) >= t.nBase {
		delete(t.added, a.name)
	}
	h := a.host
	if h < 0 {
		t.unhosted = without(t.unhosted, ai)
	} else {
		t.onHost[h] = without(t.onHost[h], ai)
		t.freeCPU[h] += a.cpus
		t.freeMem[h] += a.mem
	}
	if a.group < 0 {
		return
	}
	g := &t.groupList[a.group]
	if g.bits == nil {
		g.added = without(g.added, ai)
		return
	}
	g.members = without(g.members, ai)
	if h < 0 {
		return
	}
	if t.memberOn(int(h), a.group) < 0 {
		g.bits[h>>6] &^= 1 << (uint(h) & 63)
	}
	for _, s := range g.spreads {
		if v := s.col.ids[h]; v >= 0 {
			s.counts[v]--
		}
	}
}

// memberOn returns the allocation of group gid on host h with the smallest
// name, or -1.
func (t *Tracker) memberOn(h int, gid int32) int32 {
	best := int32(-1)
	for _, ai := range t.onHost[h] {
		a := t.meta(ai)
		if a.group == gid && (best < 0 || a.name < t.allocs[best].name) {
			best = ai
		}
	}
	return best
}

func without(s []int32, x int32) []int32 {
	for i, v := range s {
		if v == x {
			s[i] = s[len(s)-1]
			return s[:len(s)-1]
		}
	}
	return s
}

// candidate is a workload being placed, with its placement parsed once and
// compiled against the tracker's label columns.
type candidate struct {
	kind api.Kind
	// avoid is the host index the workload must not go to now (-1: none).
	avoid   int32
	name    string
	cpus    int
	mem     api.ByteSize
	prio    int32
	require []labelMatch
	prefer  []labelPref
	// preferTotal is the sum of the preference weights.
	preferTotal int
	group       int32 // -1: none
	groupName   string
	bits        []uint64 // the group's hosts
	spread      *spreadIndex
	// spreadMin and spreadMax are the fewest and most members on any label
	// value held by a ready host, fixed per placement by prepare.
	spreadMin, spreadMax int32
	// isNew: admission control applies.
	isNew bool
	// vips are the floating IPs the host must be able to hold.
	vips []vipNeed
	// weights of the scorers, and their sum; set by prepare.
	weights   [maxScorers]float64
	weightSum float64
}

type labelMatch struct {
	c   api.Constraint
	col *labelColumn
	// ids are the value ids of c.Values that some host has.
	ids []int32
	// positive: "=" and "in" (the value must be among ids); otherwise "!="
	// and "notin".
	positive bool
}

func (m *labelMatch) ok(h int) bool {
	v := m.col.ids[h]
	if v < 0 {
		return !m.positive
	}
	for _, id := range m.ids {
		if id == v {
			return m.positive
		}
	}
	return !m.positive
}

type labelPref struct {
	col    *labelColumn
	id     int32 // -1: no host has the value
	weight int
}

var errBadOp = errors.New("unknown constraint operator")

// candidate parses w's placement and compiles it.
func (t *Tracker) candidate(w *api.Workload, isNew bool) (*candidate, error) {
	p, err := w.ParsePlacement()
	if err != nil {
		return nil, err
	}
	c := &candidate{name: w.Name, kind: w.Kind, cpus: w.CPUs, mem: w.Memory, prio: int32(w.Priority), group: -1, isNew: isNew, avoid: -1, vips: t.vipNeeds(w.Name)}
	if host, ok := t.avoid[w.Name]; ok {
		if h, ok := t.index[host]; ok {
			c.avoid = int32(h)
		}
	}
	for _, r := range p.Require {
		m := labelMatch{c: r, col: t.column(r.Key)}
		switch r.Op {
		case api.OpEq, api.OpIn:
			m.positive = true
		case api.OpNotEq, api.OpNotIn:
		default:
			return nil, errBadOp
		}
		for _, v := range r.Values {
			if id, ok := m.col.byValue[v]; ok {
				m.ids = append(m.ids, id)
			}
		}
		c.require = append(c.require, m)
	}
	for _, pr := range p.Prefer {
		col := t.column(pr.Key)
		id, ok := col.byValue[pr.Value]
		if !ok {
			id = -1
		}
		c.prefer = append(c.prefer, labelPref{col: col, id: id, weight: pr.Weight})
		c.preferTotal += pr.Weight
	}
	if p.AntiAffinity != "" {
		c.group = t.groupID(p.AntiAffinity)
		c.groupName = p.AntiAffinity
		c.bits = t.groupBits(c.group)
		if p.SpreadBy != "" {
			c.spread = t.spreadIndex(c.group, p.SpreadBy)
		}
	}
	return c, nil
}

// prepare fixes what the scorers need per placement (not per host).
func (t *Tracker) prepare(c *candidate) {
	t.weigh(c)
	if c.spread == nil {
		return
	}
	first := true
	for v, n := range c.spread.counts {
		if c.spread.col.ready[v] == 0 {
			continue
		}
		if first || n < c.spreadMin {
			c.spreadMin = n
		}
		if first || n > c.spreadMax {
			c.spreadMax = n
		}
		first = false
	}
}
