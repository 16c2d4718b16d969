package jobs

import (
	"sync"
	"time"
)

// ViewInterval is how often every running job is sampled while a viewer
// (SAMPLES, overseer top) is connected; protocol.md (SAMPLES) documents it.
const ViewInterval = 2 * time.Second

// viewing samples every running job, whether or not it asked for
// sampling, while at least one viewer is subscribed: the first viewer
// starts its goroutine and timer, the last one to leave stops them (cancel,
// then wait), so a daemon nobody watches has neither. The samples go to
// the viewers only, never to the store.
type viewing struct {
	status func() []Status // the jobs, as STATUS sees them

	mu     sync.Mutex
	subs   map[*SampleFeed]struct{} // guarded by mu
	quit   chan struct{}            // guarded by mu: closed to stop run; nil while none runs
	done   chan struct{}            // guarded by mu: closed when run has returned
	closed bool                     // guarded by mu: the daemon is stopping
}

// SampleFeed receives, every ViewInterval, a sample of each running job.
type SampleFeed struct {
	ch chan []Sample // buffered 1: a slow viewer gets the newest batch only
	v  *viewing
}

// Samples delivers the batches; it is closed when the daemon stops.
func (f *SampleFeed) Samples() <-chan []Sample { return f.ch }

// Close ends the feed; the last one closed stops the sampling.
func (f *SampleFeed) Close() { f.v.leave(f) }

// ViewSamples subscribes a viewer to samples of every running job, every
// ViewInterval; the first batch comes at once.
func (m *Manager) ViewSamples() (*SampleFeed, error) { return m.viewing.join() }

// Viewers returns how many viewers are subscribed to samples.
func (m *Manager) Viewers() int {
	m.viewing.mu.Lock()
	defer m.viewing.mu.Unlock()
	return len(m.viewing.subs)
}

func (v *viewing) join() (*SampleFeed, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, ErrClosed
	}
	f := &SampleFeed{ch: make(chan []Sample, 1), v: v}
	v.subs[f] = struct{}{}
	if v.quit == nil {
		v.quit, v.done = make(chan struct{}), make(chan struct{})
		go v.run(v.quit, v.done)
	}
	return f, nil
}

func (v *viewing) leave(f *SampleFeed) {
	v.mu.Lock()
	if _, ok := v.subs[f]; !ok {
		v.mu.Unlock()
		return
	}
	delete(v.subs, f)
	close(f.ch)
	var quit, done chan struct{}
	if len(v.subs) == 0 && v.quit != nil {
		quit, done = v.quit, v.done
		v.quit, v.done = nil, nil
	}
	v.mu.Unlock()
	if quit != nil {
		close(quit)
		<-done
	}
}

// close ends every feed and waits for the sampling to stop.
func (v *viewing) close() {
	v.mu.Lock()
	v.closed = true
	for f := range v.subs {
		delete(v.subs, f)
		close(f.ch)
	}
	quit, done := v.quit, v.done
	v.quit, v.done = nil, nil
	v.mu.Unlock()
	if quit != nil {
		close(quit)
		<-done
	}
}

// run samples every running job every ViewInterval until quit.
func (v *viewing) run(quit, done chan struct{}) {
	defer close(done)
	seen := make(map[string]*watched) // by job: the previous sample, for CPU %
	tick := time.NewTicker(ViewInterval)
	defer tick.Stop()
	for {
		v.publish(v.sample(seen))
		select {
		case <-quit:
			return
		case <-tick.C:
		}
	}
}

// sample measures every running job, keeping in seen what the next CPU
// percentage is computed from.
func (v *viewing) sample(seen map[string]*watched) []Sample {
	now := time.Now()
	running := make(map[string]Status)
	sids := make(map[int][]int32)
	for _, st := range v.status() {
		if st.Pid > 0 {
			running[st.Name] = st
			sids[st.Pid] = nil
		}
	}
	for name, w := range seen {
		if st, ok := running[name]; !ok || st.Pid != w.pid {
			delete(seen, name)
		}
	}
	if len(running) == 0 {
		return nil
	}
	sessions(sids)
	samples := make([]Sample, 0, len(running))
	for name, st := range running {
		w := seen[name]
		if w == nil {
			w = &watched{pid: st.Pid, since: st.Since}
			seen[name] = w
		}
		if s, ok := w.measure(name, sids[st.Pid], now); ok {
			samples = append(samples, s)
		}
	}
	return samples
}

// publish hands batch to every viewer, never waiting: a viewer that has
// not taken the previous batch gets this one in its place.
func (v *viewing) publish(batch []Sample) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for f := range v.subs {
		select {
		case <-f.ch:
		default:
		}
		f.ch <- batch
	}
}
