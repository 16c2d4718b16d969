package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one state transition of a job, as EVENTS streams it; protocol.md
// defines its line.
type Event struct {
	At     time.Time // when the job entered New
	Job    string
	Old    State  // NoState for a job's first event
	New    State  // a State word, or Removed
	Pid    int    // the process the transition is about, 0 if none
	Reason string // what happened: "started", "exited 3", "killed by KILL", ...
}

// NoState is an Event's Old state for a job that was not there before (a
// new file, the first load of a daemon).
const NoState State = "-"

// eventQueue is how many events a subscriber may fall behind before events
// are dropped for it: its channel is allocated whole (about 100 bytes an
// event), so it is what an idle or stalled subscriber costs.
const eventQueue = 64

// Subscription receives the events of all jobs or of one.
type Subscription struct {
	job     string // "" for every job
	ch      chan Event
	dropped atomic.Int64 // events it was too slow to take
	b       *broker
}

// Events delivers the events; it is closed when the daemon stops.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Dropped returns how many events were lost since it was last called,
// because the subscriber fell eventQueue events behind. Ask when Events is
// empty: the loss is then all told.
func (s *Subscription) Dropped() int64 { return s.dropped.Swap(0) }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if _, ok := s.b.subs[s]; ok {
		delete(s.b.subs, s)
		close(s.ch)
	}
}

// broker hands every event to the subscriptions that want it, never
// waiting for one: a full queue drops the event and counts it.
type broker struct {
	mu     sync.Mutex // guards the fields below
	subs   map[*Subscription]struct{}
	closed bool
}

func newBroker() *broker {
	return &broker{subs: make(map[*Subscription]struct{})}
}

// subscribe returns a subscription to the events of job ("" for all).
func (b *broker) subscribe(job string) (*Subscription, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	s := &Subscription{job: job, ch: make(chan Event, eventQueue), b: b}
	b.subs[s] = struct{}{}
	return s, nil
}

// publish sends e to every subscription that wants it, without blocking.
func (b *broker) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.job != "" && s.job != e.Job {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// close ends every subscription, and refuses new ones.
func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.ch)
	}
}

// exitWords says how a process ended, for an event: "exited 3", "killed by KILL".
func exitWords(e Exit) string {
	if e.Signal != "" {
		return "killed by " + e.Signal
	}
	return fmt.Sprintf("exited %d", e.Code)
}

// stopWords says why overseer stops a job, for an event, from the reason
// its run records.
func stopWords(reason string) string {
	switch reason {
	case "stopped":
		return "stopped by request"
	case "restart":
		return "restart by request"
	case "reload":
		return "reload: file changed"
	case "removed":
		return "reload: file removed"
	case "die":
		return "daemon stopping"
	case "expired":
		return "TTL passed"
	case "tied":
		return "tied process exited"
	case "":
		return heldNote
	}
	return reason
}

// Subscribe returns a subscription to the state transitions of the named
// job, or of every job when name is "". A name must be known (a job, or a
// rejected file); the subscription then follows that name through reloads,
// removal and return.
func (m *Manager) Subscribe(name string) (*Subscription, error) {
	if name != "" {
		m.mu.Lock()
		known := m.get(name).known()
		closed := m.closed
		m.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case !known:
			return nil, ErrNoJob
		}
	}
	return m.cfg.events.subscribe(name)
}

// ErrRemoved is returned by Wait when the job is removed meanwhile, as a
// *RemovedError when the removal said why.
var ErrRemoved = errors.New("job removed")

// RemovedError is ErrRemoved with the reason of the removal: "reload: file
// removed", "its TTL of 1h0m0s passed", ...
type RemovedError struct{ Reason string }

func (e *RemovedError) Error() string        { return ErrRemoved.Error() + ": " + e.Reason }
func (e *RemovedError) Is(target error) bool { return target == ErrRemoved }

// Wait returns once the named job is in state want: at once if it is
// already. It returns ctx's error when ctx ends first, ErrRemoved when a
// reload removes the job, ErrClosed when the daemon stops; with the job's
// last state in every case. It waits on the same transitions EVENTS
// streams: no polling.
func (m *Manager) Wait(ctx context.Context, name string, want State) (State, error) {
	if _, err := m.lookup(name); err != nil {
		return "", err
	}
	// Subscribe before looking: a transition in between is then seen.
	sub, err := m.cfg.events.subscribe(name)
	if err != nil {
		return "", err
	}
	defer sub.Close()
	// Look up the supervisor each time: the job's file may have changed,
	// and a new one taken its name.
	current := func() (State, error) {
		s, err := m.lookup(name)
		if errors.Is(err, ErrNoJob) {
			return "", ErrRemoved // since the first look
		}
		if err != nil {
			return "", err
		}
		return s.Status().State, nil
	}
	last, err := current()
	if err != nil || last == want {
		return last, err
	}
	for {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				return last, ErrClosed
			}
			last = e.New
			switch {
			case e.New == want:
				return last, nil
			case e.New == Removed:
				return last, &RemovedError{Reason: e.Reason}
			}
			if len(sub.Events()) == 0 && sub.Dropped() > 0 {
				// Too many transitions at once to follow them all: look.
				if last, err = current(); err != nil || last == want {
					return last, err
				}
			}
		case <-ctx.Done():
			return last, ctx.Err()
		}
	}
}
