package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Spawn describes an ephemeral job, started by a SPAWN request: a job
// without a file, supervised like the others (with every default a file
// may override) until its TTL passes, the process it is tied to exits, a
// STOP comes or the daemon stops; then it is stopped and forgotten.
type Spawn struct {
	Name    string
	Command []string
	TTL     time.Duration // 0: none
	// TiedPid, when not 0, is the requesting process (from the socket's
	// peer credentials): the job is stopped when it exits or, with
	// TiedParent, when its parent does.
	TiedPid    int
	TiedParent bool
}

// Ephemeral is what STATUS tells of an ephemeral job.
type Ephemeral struct {
	Expires time.Time // when its TTL passes; zero without a TTL
	TiedTo  int       // the pid of the process it is tied to; 0 when not tied
}

// Forgotten is the Detail of Stop's Outcome for an ephemeral job: stopped,
// it is forgotten.
const Forgotten = "forgotten"

// SpawnError is why a SPAWN is refused, in words for whoever asked.
type SpawnError struct{ Msg string }

func (e *SpawnError) Error() string { return e.Msg }

func refuse(format string, a ...any) error {
	return &SpawnError{Msg: fmt.Sprintf(format, a...)}
}

// ephemeral is the manager's record of one ephemeral job.
type ephemeral struct {
	Ephemeral
	sup        *supervisor
	watch      *exitWatch    // the tied process; nil when not tied
	gone       chan struct{} // closed once the job is forgotten
	forgetting bool          // guarded by Manager.mu
}

// release closes the watch, ending the watch's goroutine (the TTL's ends
// with gone, or the manager's quit).
func (e *ephemeral) release() {
	if e.watch != nil {
		e.watch.close()
	}
}

// Spawn starts an ephemeral job. A name that a job file uses (loaded or
// rejected) or a living ephemeral job has is refused, as is a tie to a
// process that is gone; a job that cannot start is forgotten at once.
func (m *Manager) Spawn(sp Spawn) (Outcome, Ephemeral, error) {
	if p := NameProblem(sp.Name); p != "" {
		return Outcome{}, Ephemeral{}, refuse("SPAWN: invalid job name %q: %s", sp.Name, p)
	}
	j := defaultJob(sp.Name)
	j.Command = sp.Command
	h := sha256.New()
	fmt.Fprintf(h, "SPAWN %s\n", ShellJoin(sp.Command))
	j.Hash = hex.EncodeToString(h.Sum(nil)[:8])

	e := &ephemeral{gone: make(chan struct{})}
	if sp.TiedPid > 0 {
		// Opened now, while the requester waits for its answer.
		w, err := watchProcess(sp.TiedPid, sp.TiedParent)
		if err != nil {
			return Outcome{}, Ephemeral{}, refuse("SPAWN: cannot tie %s: %v", sp.Name, err)
		}
		e.watch, e.TiedTo = w, w.pid
	}

	m.mu.Lock()
	if err := m.clash(sp.Name); err != nil {
		m.mu.Unlock()
		e.release()
		return Outcome{}, Ephemeral{}, err
	}
	sl := m.at(sp.Name)
	wasHeld := sl.held // a hold left by a job file that is gone
	sl.held = false
	e.sup = newSupervisor(j, m.cfg, m.sink(sp.Name))
	sl.sup, sl.eph = e.sup, e
	// The TTL's timer and the tie's watch each have a goroutine, which
	// Shutdown waits for (m.bg): none outlives the manager. Started under
	// mu while not closed, so never after Shutdown began to wait.
	if sp.TTL > 0 {
		e.Expires = time.Now().Add(sp.TTL)
		why := fmt.Sprintf("its TTL of %v passed", sp.TTL)
		m.bg.Go(func() {
			t := time.NewTimer(sp.TTL)
			defer t.Stop()
			select {
			case <-t.C:
				m.forget(sp.Name, e, "expired", why)
			case <-e.gone:
			case <-m.quit:
			}
		})
	}
	if e.watch != nil {
		why := fmt.Sprintf("pid %d, which it was tied to, exited", e.TiedTo)
		m.bg.Go(func() {
			if e.watch.wait() {
				m.forget(sp.Name, e, "tied", why)
			}
		})
	}
	info := e.Ephemeral
	m.mu.Unlock()
	if wasHeld {
		if err := m.cfg.Recorder.SetHeld(context.Background(), sp.Name, false); err != nil {
			m.cfg.Logger.Warn("record hold", "job", sp.Name, "err", err)
		}
	}

	o := e.sup.do(request{op: opUp, force: true})
	if o.Verb == FailedIt {
		m.forget(sp.Name, e, "", o.Detail)
	}
	return o, info, nil
}

// clash says why name cannot be given to a new ephemeral job, or nil.
// Call with mu held.
func (m *Manager) clash(name string) error {
	sl := m.get(name)
	switch {
	case m.closed:
		return ErrClosed
	case sl.eph != nil:
		return refuse("SPAWN: an ephemeral job named %s exists already: STOP %s first, or pick another name", name, name)
	case sl.leaving:
		return refuse("SPAWN: the job %s, whose file was removed, is still stopping: try again once RELOAD has answered", name)
	case sl.sup != nil:
		return refuse("SPAWN: the name %s belongs to the job file %s: pick another name", name, fileOf(sl.sup.definition()))
	case sl.rejected != "":
		return refuse("SPAWN: the name %s belongs to the job file %s.env (rejected): pick another name", name, name)
	}
	return nil
}

// ephemeralClash is the RELOAD error of the job file file (NAME.env, or
// BASE.env whose INSTANCES makes name) that makes the name of a living
// ephemeral job.
func ephemeralClash(name, file string) error {
	return &FileError{File: file, Err: fmt.Errorf("the name %s belongs to a running ephemeral job (SPAWN): rename the file, or STOP %s and RELOAD", name, name)}
}

// forget stops an ephemeral job (reason goes to its run) and forgets it:
// its row in the jobs table says removed, with why. A second call waits
// for the first. It returns what stopping did.
func (m *Manager) forget(name string, e *ephemeral, reason, why string) Outcome {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Outcome{} // Shutdown stops it
	}
	if e.forgetting {
		m.mu.Unlock()
		<-e.gone
		return Outcome{}
	}
	e.forgetting = true
	m.mu.Unlock()
	e.release()
	// It stays listed, stopping, until its process is gone, and its name
	// stays taken until then.
	o := e.sup.do(request{op: opQuit, reason: reason})
	<-e.sup.ended()
	m.mu.Lock()
	if sl := m.slots[name]; sl != nil && sl.eph == e {
		if sl.rejected == ephemeralClash(name, name+".env").Error() ||
			baseOf(name) != "" && sl.rejected == ephemeralClash(name, baseOf(name)+".env").Error() {
			sl.rejected = "" // the next RELOAD loads the file
		}
		if l := sl.sink; l != nil {
			defer l.close()
			defer l.drain(drainLimit) // its last lines first
		}
		sl.sup, sl.eph, sl.sink = nil, nil, nil
		m.tidy(name)
	}
	m.mu.Unlock()
	st := e.sup.Status()
	was := st.State
	st.State, st.Pid, st.Since, st.Reason = Removed, 0, time.Now(), why
	if err := m.cfg.Recorder.RecordState(context.Background(), st); err != nil {
		m.cfg.Logger.Warn("record state", "job", name, "err", err)
	}
	m.cfg.events.publish(Event{At: st.Since, Job: name, Old: was, New: Removed, Reason: why})
	m.cfg.Logger.Info("forgot ephemeral job", "job", name, "why", why)
	close(e.gone)
	return o
}

// SplitCommand splits a command line as a job file's COMMAND is split
// (shlex, like a shell's words), refusing an empty one.
func SplitCommand(s string) ([]string, error) { return splitCommand(s) }

// ephemeralJob returns the record of the named ephemeral job, or nil.
func (m *Manager) ephemeralJob(name string) *ephemeral {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.get(name).eph
}
