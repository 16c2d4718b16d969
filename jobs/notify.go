package jobs

import (
	"strings"
	"sync"
	"time"
)

// NotifyEnv is the variable that gives a READY=notify job the path of the
// daemon's sd_notify socket.
const NotifyEnv = "NOTIFY_SOCKET"

// notifySocket is the name of the sd_notify socket in the data dir.
const notifySocket = "notify.sock"

// Bounds of what a job may send over sd_notify: a datagram longer than
// maxNotifySize is dropped whole, a STATUS= text is cut to maxStatusText
// bytes, and a job's messages beyond maxNotifyRate in one second are
// dropped (each STATUS= is published to every reader of STATUS).
const (
	maxNotifySize = 4096
	maxStatusText = 200
	maxNotifyRate = 50
)

// unclaimed is how many messages from senders no job has claimed yet are
// kept, for a job whose process sends before the supervisor registered it.
const unclaimed = 32

// notice is what one sd_notify datagram of a job said.
type notice struct {
	ready  bool   // READY=1
	status string // STATUS=..., or "" when it had none
	set    bool   // it had a STATUS=
}

// parseNotice reads the newline-separated VAR=VALUE assignments of an
// sd_notify datagram; only READY=1 and STATUS= count.
func parseNotice(msg string) notice {
	var n notice
	for _, line := range strings.Split(msg, "\n") {
		k, v, ok := strings.Cut(line, "=")
		switch {
		case !ok:
		case k == "READY" && v == "1":
			n.ready = true
		case k == "STATUS":
			n.set = true
			n.status = clipStatus(v)
		}
	}
	return n
}

// clipStatus keeps the first maxStatusText bytes of s, whole runes only.
func clipStatus(s string) string {
	if len(s) <= maxStatusText {
		return s
	}
	return strings.ToValidUTF8(s[:maxStatusText], "") + "..."
}

// notifyRoutes maps the session of each READY=notify job's live process
// (its pid: the job starts as a session leader) to its supervisor's
// channel. The socket's reader routes each datagram by its sender's
// session, as the kernel reports its pid; messages no job claims yet are
// kept (unclaimed of them) for one that registers just after its process
// sent them.
type notifyRoutes struct {
	mu     sync.Mutex
	routes map[int]*route // guarded by mu
	early  []early        // guarded by mu
}

type route struct {
	c      chan<- notice
	wake   func()    // called after a send on c; nil: none
	window time.Time // the second being counted
	count  int       // messages in it
}

type early struct {
	sid int
	n   notice
}

// add routes the messages of session sid to c, first those it sent
// before, calling wake after each.
func (r *notifyRoutes) add(sid int, c chan<- notice, wake func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.routes == nil {
		r.routes = make(map[int]*route)
	}
	rt := &route{c: c, wake: wake}
	r.routes[sid] = rt
	kept := r.early[:0]
	for _, e := range r.early {
		if e.sid == sid {
			rt.send(e.n, time.Now())
		} else {
			kept = append(kept, e)
		}
	}
	r.early = kept
}

// remove stops routing session sid.
func (r *notifyRoutes) remove(sid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routes, sid)
}

// deliver routes n, sent from session sid.
func (r *notifyRoutes) deliver(sid int, n notice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt := r.routes[sid]; rt != nil {
		rt.send(n, time.Now())
		return
	}
	if len(r.early) == unclaimed {
		r.early = r.early[1:]
	}
	r.early = append(r.early, early{sid, n})
}

// send passes n on unless the job went over its rate, or its supervisor
// has not taken the last ones yet: it never blocks the reader.
func (rt *route) send(n notice, now time.Time) {
	if now.Sub(rt.window) >= time.Second {
		rt.window, rt.count = now, 0
	}
	if rt.count++; rt.count > maxNotifyRate {
		return
	}
	select {
	case rt.c <- n:
		if rt.wake != nil {
			rt.wake()
		}
	default:
	}
}
