package scheduler

// A scorer rates a feasible host from 0 to 100. The host's score is the
// weighted mean of the scorers that apply to the workload (weight > 0), so it
// stays within 0-100 and an explanation can show it as is. Weights follow
// kube-scheduler's defaults: resource fit 1, node affinity preferences 2,
// topology spread 2 — a preference or an uneven spread outweighs packing.
type scorer interface {
	weight(c *candidate) float64
	score(t *Tracker, h int, c *candidate) float64
}

// strategyScore is binpack (the fuller the host after placing, the better:
// keeps other hosts free for large workloads) or spread (the emptier, the
// better). Fullness is the mean of the CPU and memory fractions of the
// allocatable capacity in use after placing.
type strategyScore struct{ spread bool }

func (strategyScore) weight(*candidate) float64 { return 1 }

func (s strategyScore) score(t *Tracker, h int, c *candidate) float64 {
	u := (fraction(float64(t.capCPU[h]-t.freeCPU[h]+c.cpus), float64(t.capCPU[h])) +
		fraction(float64(t.capMem[h]-t.freeMem[h]+c.mem), float64(t.capMem[h]))) / 2
	if s.spread {
		return 100 * (1 - u)
	}
	return 100 * u
}

func fraction(used, capacity float64) float64 {
	if capacity <= 0 {
		return 1
	}
	return min(max(used/capacity, 0), 1)
}

// preferenceScore is the share of the workload's preference weight that
// the host's labels satisfy.
type preferenceScore struct{}

func (preferenceScore) weight(c *candidate) float64 {
	if c.preferTotal == 0 {
		return 0
	}
	return 2
}

func (preferenceScore) score(_ *Tracker, h int, c *candidate) float64 {
	got := 0
	for i := range c.prefer {
		if p := &c.prefer[i]; p.id >= 0 && p.col.ids[h] == p.id {
			got += p.weight
		}
	}
	return 100 * float64(got) / float64(c.preferTotal)
}

// spreadScore favours hosts whose label value (say, rack) holds the fewest
// members of the workload's group: 100 on the least used values, 0 on the
// most used ones and on hosts without the label, linear in between. Placing
// members one by one on the best value keeps the counts within one of each
// other.
type spreadScore struct{}

func (spreadScore) weight(c *candidate) float64 {
	if c.spread == nil {
		return 0
	}
	return 2
}

func (spreadScore) score(_ *Tracker, h int, c *candidate) float64 {
	v := c.spread.col.ids[h]
	if v < 0 {
		return 0
	}
	if c.spreadMax == c.spreadMin {
		return 100
	}
	return 100 * float64(c.spreadMax-c.spread.counts[v]) / float64(c.spreadMax-c.spreadMin)
}

// maxScorers bounds the scorer stack, so that a candidate can keep the
// weights in an array.
const maxScorers = 4

// weigh fixes the scorers' weights for a candidate, once per placement.
func (t *Tracker) weigh(c *candidate) {
	c.weightSum = 0
	for i, s := range t.scorers {
		c.weights[i] = s.weight(c)
		c.weightSum += c.weights[i]
	}
}

// score is the weighted mean of the scorers that apply.
func (t *Tracker) score(h int, c *candidate) float64 {
	var sum float64
	for i, s := range t.scorers {
		if w := c.weights[i]; w != 0 {
			sum += w * s.score(t, h, c)
		}
	}
	return sum / c.weightSum
}
