package top

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
)

// coalesce is how long the runner gathers events, samples and log lines
// before it hands them to the model at once: the view is redrawn at most
// a few times a second however fast they come (5000 jobs restarting).
const coalesce = 250 * time.Millisecond

// ErrGone is why the view ends when overseerd goes away.
var ErrGone = errors.New("overseerd went away")

// Run shows the view of the daemon at socket on the terminal in, out
// until the user quits. Its state comes from STATUS JSON once, then EVENTS
// JSON (never STATUS again), its CPU and memory from SAMPLES JSON, the
// selected job's log from LOGS JSON FOLLOW (protocol.md).
// dial connects to overseerd (the caller checks whom it reaches).
func Run(dial func() (net.Conn, error), color bool, in, out *os.File) error {
	c := &client{dial: dial}
	defer c.close()
	// EVENTS first, then STATUS: a change between the two is applied
	// after the rows (an event sets the state it names, again or anew).
	events, err := c.stream("EVENTS JSON")
	if err != nil {
		return err
	}
	samples, err := c.stream("SAMPLES JSON")
	if err != nil {
		return err
	}
	rows, err := c.status()
	if err != nil {
		return err
	}
	m := New(c, color, time.Now)
	m.Update(StatusMsg(rows))
	opts := []tea.ProgramOption{tea.WithInput(in), tea.WithOutput(out), tea.WithFPS(10)}
	if !color {
		opts = append(opts, tea.WithColorProfile(colorprofile.Ascii))
	}
	p := tea.NewProgram(m, opts...)
	c.send = p.Send
	go c.read(events, func(b []byte, send func(any)) {
		var e jsonEvent
		if json.Unmarshal(b, &e) == nil && e.Job != "" {
			send(e.event())
		}
	}, func(items []any) tea.Msg { return EventsMsg(batchOf[Event](items)) }, true)
	go c.read(samples, func(b []byte, send func(any)) {
		var s jsonSample
		if json.Unmarshal(b, &s) == nil && s.Job != "" {
			send(Sample{Job: s.Job, Pid: s.Pid, CPU: s.CPU, RSS: s.RSS})
		}
	}, func(items []any) tea.Msg { return SamplesMsg(batchOf[Sample](items)) }, true)
	if _, err := p.Run(); err != nil {
		return err
	}
	return m.Err()
}

// client is the view's Daemon: connections to overseerd's socket.
type client struct {
	dial func() (net.Conn, error)
	send func(tea.Msg) // the program's; set before any stream is read

	mu      sync.Mutex
	streams []net.Conn // every stream open, closed by close
	logs    net.Conn   // the log pane's LOGS FOLLOW
}

// ask sends line and returns the answer's first line and a reader of the
// rest; an ERR answer is an error.
func (c *client) ask(line string) (net.Conn, string, *bufio.Reader, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, "", nil, err
	}
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		conn.Close()
		return nil, "", nil, err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	first, err := r.ReadString('\n')
	first = strings.TrimRight(first, "\n")
	switch {
	case err != nil:
		conn.Close()
		return nil, "", nil, ErrGone
	case strings.HasPrefix(first, "ERR"):
		conn.Close()
		return nil, "", nil, errors.New(strings.TrimSpace(strings.TrimPrefix(first, "ERR")))
	}
	return conn, strings.TrimPrefix(first, "OK "), r, nil
}

// stream opens a streaming request, kept until close.
func (c *client) stream(line string) (*bufio.Reader, error) {
	conn, _, r, err := c.ask(line)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Fields(line)[0], err)
	}
	c.mu.Lock()
	c.streams = append(c.streams, conn)
	c.mu.Unlock()
	return r, nil
}

func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.streams {
		conn.Close()
	}
	if c.logs != nil {
		c.logs.Close()
	}
}

// status reads every job from STATUS JSON.
func (c *client) status() ([]Job, error) {
	conn, _, r, err := c.ask("STATUS JSON")
	if err != nil {
		return nil, fmt.Errorf("STATUS: %w", err)
	}
	defer conn.Close()
	var jobs []jsonJob
	if err := json.NewDecoder(r).Decode(&jobs); err != nil {
		return nil, fmt.Errorf("STATUS: %w", err)
	}
	out := make([]Job, len(jobs))
	for i, j := range jobs {
		out[i] = j.job()
	}
	return out, nil
}

// Request sends one request (START, STOP, RESTART, SIGNAL).
func (c *client) Request(line string) (string, error) {
	conn, first, _, err := c.ask(line)
	if err != nil {
		return "", err
	}
	conn.Close()
	return first, nil
}

// History returns the job's every run, as HISTORY's lines.
func (c *client) History(job string) ([]string, error) {
	conn, _, r, err := c.ask("HISTORY " + job + " 10000")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var lines []string
	for {
		l, err := r.ReadString('\n')
		if l = strings.TrimRight(l, "\n"); l != "" {
			lines = append(lines, l)
		}
		if err != nil {
			return lines, nil
		}
	}
}

// Follow follows job's log in place of the job followed before.
func (c *client) Follow(job string) {
	c.mu.Lock()
	if c.logs != nil {
		c.logs.Close()
		c.logs = nil
	}
	c.mu.Unlock()
	conn, _, r, err := c.ask("LOGS JSON " + job + " 50 FOLLOW")
	if err != nil {
		c.send(LogMsg{Job: job, Lines: []string{"(" + err.Error() + ")"}})
		return
	}
	c.mu.Lock()
	c.logs = conn
	c.mu.Unlock()
	go c.read(r, func(b []byte, send func(any)) {
		var l struct {
			Text string `json:"text"`
		}
		if json.Unmarshal(b, &l) == nil {
			send(l.Text)
		}
	}, func(items []any) tea.Msg {
		lines := make([]string, len(items))
		for i, x := range items {
			lines[i] = x.(string)
		}
		return LogMsg{Job: job, Lines: lines}
	}, false)
}

// read parses each line of a stream into items with parse, and hands
// them to the model in batches made by batch, at most one per coalesce.
// When the stream ends and vital is set, overseerd went away.
func (c *client) read(r *bufio.Reader, parse func([]byte, func(any)), batch func([]any) tea.Msg, vital bool) {
	var mu sync.Mutex
	var pending []any
	armed := false
	flush := func() {
		mu.Lock()
		items := pending
		pending, armed = nil, false
		mu.Unlock()
		if len(items) > 0 {
			c.send(batch(items))
		}
	}
	add := func(x any) {
		mu.Lock()
		defer mu.Unlock()
		pending = append(pending, x)
		if !armed {
			armed = true
			time.AfterFunc(coalesce, flush)
		}
	}
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[0] == '{' {
			parse(line, add)
		}
		if err != nil {
			if vital {
				c.send(GoneMsg{Err: ErrGone})
			}
			return
		}
	}
}

// The JSON forms read (protocol.md, JSON answers).
type (
	jsonJob struct {
		Name     string    `json:"name"`
		State    string    `json:"state"`
		Pid      int       `json:"pid"`
		Since    time.Time `json:"since"`
		Restarts int       `json:"restarts"`
		LastExit *struct {
			Code   *int    `json:"exit_code"`
			Signal *string `json:"signal"`
		} `json:"last_exit"`
	}
	jsonEvent struct {
		Time   time.Time `json:"time"`
		Job    string    `json:"job"`
		Old    *string   `json:"old"`
		New    string    `json:"new"`
		Pid    int       `json:"pid"`
		Reason string    `json:"reason"`
	}
	jsonSample struct {
		Job string  `json:"job"`
		Pid int     `json:"pid"`
		CPU float64 `json:"cpu_percent"`
		RSS int64   `json:"rss_bytes"`
	}
)

func (j jsonJob) job() Job {
	out := Job{Name: j.Name, State: j.State, Pid: j.Pid, Since: j.Since, Restarts: j.Restarts}
	switch e := j.LastExit; {
	case e == nil:
	case e.Signal != nil:
		out.Last = *e.Signal
	case e.Code != nil:
		out.Last = fmt.Sprintf("exit %d", *e.Code)
	default:
		out.Last = "unknown"
	}
	return out
}

func (e jsonEvent) event() Event {
	out := Event{At: e.Time, Job: e.Job, New: e.New, Pid: e.Pid, Reason: e.Reason}
	if e.Old != nil {
		out.Old = *e.Old
	}
	return out
}

// batchOf is items, each a T, as a []T.
func batchOf[T any](items []any) []T {
	out := make([]T, len(items))
	for i, x := range items {
		out[i] = x.(T)
	}
	return out
}
