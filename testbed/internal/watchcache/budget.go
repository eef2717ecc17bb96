package watchcache

import "time"

// timeBudget mirrors kube-apiserver's cacher time_budget.go: how long the
// dispatcher may block on full watcher channels per dispatch round. It
// refills at refreshPerSecond up to maxBudget, so one slow watcher costs every
// other watcher of the resource at most ~100 ms before it is dropped.
type timeBudget struct {
	budget time.Duration
	last   time.Time
}

const (
	refreshPerSecond = 50 * time.Millisecond
	maxBudget        = 100 * time.Millisecond
)

func newTimeBudget(now time.Time) *timeBudget {
	return &timeBudget{budget: maxBudget, last: now}
}

func (b *timeBudget) refill(now time.Time) {
	elapsed := now.Sub(b.last)
	if elapsed <= 0 {
		return
	}
	b.budget += time.Duration(float64(refreshPerSecond) * elapsed.Seconds())
	b.budget = min(b.budget, maxBudget)
	b.last = now
}

// take returns all currently available budget.
func (b *timeBudget) take(now time.Time) time.Duration {
	b.refill(now)
	d := b.budget
	b.budget = 0
	return d
}

// giveBack returns unused budget.
func (b *timeBudget) giveBack(d time.Duration) {
	if d > 0 {
		b.budget = min(b.budget+d, maxBudget)
	}
}
