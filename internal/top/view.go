package top

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// styles colour the view; without colour they change nothing.
type styles struct {
	color                       bool
	title, head, sel, dim, note lipgloss.Style
	states                      map[string]lipgloss.Style
}

func newStyles(color bool) styles {
	plain := lipgloss.NewStyle()
	if !color {
		return styles{title: plain, head: plain, sel: plain, dim: plain, note: plain}
	}
	s := styles{color: color,
		title: plain.Bold(true),
		head:  plain.Bold(true),
		sel:   plain.Reverse(true),
		dim:   plain.Faint(true),
		note:  plain.Foreground(lipgloss.Yellow),
	}
	green, red, yellow := plain.Foreground(lipgloss.Green), plain.Foreground(lipgloss.Red), plain.Foreground(lipgloss.Yellow)
	s.states = map[string]lipgloss.Style{
		"running": green, "failed": red, "backoff": red, "rejected": red,
		"starting": yellow, "stopping": yellow, "waiting": yellow,
		"stopped": s.dim, "exited": s.dim, "skipped": s.dim,
	}
	return s
}

// The table's columns, after a one-character selection mark and the name.
const rowFormat = "%-9s %7s %7s %3s %-9s %6s %6s"

// View is the screen, on the terminal's alternate screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Screen())
	v.AltScreen = true
	return v
}

// Screen draws the screen: exactly the window's lines, none wider than
// it, and only the rows that fit.
func (m *Model) Screen() string {
	m.rebuild()
	now := m.now()
	lines := make([]string, 0, m.h)
	running := 0
	for _, j := range m.jobs {
		if j.State == "running" {
			running++
		}
	}
	title := fmt.Sprintf("overseer top  %d jobs, %d running  sort: %s", len(m.jobs), running, sorts[m.sortBy])
	if m.filter != "" || m.typing {
		title += fmt.Sprintf("  filter: %s (%d shown)", m.filter, len(m.rows))
	}
	lines = append(lines, m.st.title.Render(title))
	nameW := max(4, m.w-3-len(fmt.Sprintf(rowFormat, "", "", "", "", "", "", "")))
	lines = append(lines, m.st.head.Render(fmt.Sprintf("  %-*s "+rowFormat, nameW, "NAME", "STATE", "PID", "UP", "RST", "LAST", "CPU%", "RSS")))

	if m.hist != nil {
		lines = append(lines, m.paneTitle("history of "+m.histJob+" (newest first; esc closes)"))
		n := m.h - 4
		for i := m.histTop; i < len(m.hist) && i < m.histTop+n; i++ {
			lines = append(lines, clean(m.hist[i]))
		}
		if len(m.hist) == 0 {
			lines = append(lines, "no runs")
		}
		return m.screen(lines)
	}

	// The rows: only those on screen are formatted.
	n := m.tableRows()
	i := m.index()
	m.top = min(m.top, i)
	if i >= m.top+n {
		m.top = i - n + 1
	}
	m.top = max(0, min(m.top, len(m.rows)-n))
	for _, j := range m.rows[m.top:min(len(m.rows), m.top+n)] {
		lines = append(lines, m.row(j, nameW, now))
	}
	if len(m.rows) == 0 {
		lines = append(lines, m.st.dim.Render("  no jobs"))
	}
	for len(lines) < 2+n {
		lines = append(lines, "")
	}

	if ll := m.logLines(); ll > 0 {
		j := m.jobs[m.sel]
		lines = append(lines, m.sparks(j)...)
		what := "no job selected"
		if j != nil {
			what = "log of " + j.Name
		}
		lines = append(lines, m.paneTitle(what))
		log := m.log
		if m.logJob != m.sel {
			log = nil
		}
		for _, l := range log[max(0, len(log)-ll):] {
			lines = append(lines, clean(l))
		}
	}
	return m.screen(lines)
}

// screen pads lines to the window's height, cuts them to its width, and
// ends them with the footer.
func (m *Model) screen(lines []string) string {
	lines = lines[:min(len(lines), m.h-1)]
	for len(lines) < m.h-1 {
		lines = append(lines, "")
	}
	lines = append(lines, m.footer())
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, m.w, "")
	}
	return strings.Join(lines, "\n")
}

// footer says the keys, or the question being asked.
func (m *Model) footer() string {
	switch {
	case m.typing:
		return "filter: " + m.filter + "_   (enter: keep, esc: clear)"
	case m.confirm != "":
		return m.st.note.Render("stop " + m.confirm + "? y/n")
	case m.signalOf != "":
		var b strings.Builder
		b.WriteString("signal " + m.signalOf + ":")
		for i, s := range signals {
			fmt.Fprintf(&b, " %d %s", i+1, s)
		}
		return m.st.note.Render(b.String() + "  (other: none)")
	case m.note != "":
		return m.st.note.Render(clean(m.note)) + m.st.dim.Render("  | q quit")
	}
	return m.st.dim.Render("↑↓ / filter s sort u start x stop r restart k signal h history q quit")
}

// row formats one job's row.
func (m *Model) row(j *Job, nameW int, now time.Time) string {
	name := j.Name
	if len(name) > nameW {
		name = name[:nameW-1] + "~"
	}
	pid, up, cpu, rss, last := "-", "-", "-", "-", j.Last
	if j.Pid > 0 {
		pid = strconv.Itoa(j.Pid)
		up = short(uptime(j, now))
	}
	if j.Sampled {
		cpu = strconv.FormatFloat(j.CPU, 'f', 1, 64)
		rss = bytes(j.RSS)
	}
	if last == "" {
		last = "-"
	}
	state := fmt.Sprintf("%-9s", j.State)
	rest := fmt.Sprintf(rowFormat, "", pid, up, strconv.Itoa(j.Restarts), last, cpu, rss)[9:]
	mark := "  "
	if j.Name == m.sel {
		mark = "> "
	}
	if !m.st.color {
		return fmt.Sprintf("%s%-*s %s%s", mark, nameW, name, state, rest)
	}
	if j.Name == m.sel {
		return m.st.sel.Render(fmt.Sprintf("%s%-*s %s%s", mark, nameW, name, state, rest))
	}
	if st, ok := m.st.states[j.State]; ok {
		state = st.Render(state)
	}
	return fmt.Sprintf("%s%-*s %s%s", mark, nameW, name, state, rest)
}

// sparks draws the selected job's CPU and memory over its last samples.
func (m *Model) sparks(j *Job) []string {
	if j == nil {
		return []string{"", ""}
	}
	width := max(1, m.w-20)
	cpu, rss := "-", "-"
	if j.Sampled {
		cpu = strconv.FormatFloat(j.CPU, 'f', 1, 64) + "%"
		rss = bytes(j.RSS)
	}
	return []string{
		fmt.Sprintf("  cpu %-*s %8s", width, spark(j.cpu, width, false), cpu),
		fmt.Sprintf("  mem %-*s %8s", width, spark(j.rss, width, true), rss),
	}
}

// bars are a sparkline's levels, lowest first.
var bars = []rune("▁▂▃▄▅▆▇█")

// spark draws the last width of values as a sparkline: from 0 to their
// maximum, at least 100 (a CPU percentage: an idle job stays low), or,
// with span, from their minimum to their maximum (memory, whose changes
// are small beside its size).
func spark(values []float64, width int, span bool) string {
	values = values[max(0, len(values)-width):]
	lo, hi := 0.0, 100.0
	if span && len(values) > 0 {
		lo, hi = slices.Min(values), slices.Max(values)
	} else if len(values) > 0 {
		hi = max(hi, slices.Max(values))
	}
	var b strings.Builder
	for _, v := range values {
		i := len(bars) / 2
		if hi > lo {
			i = min(len(bars)-1, max(0, int((v-lo)/(hi-lo)*float64(len(bars)-1)+0.5)))
		}
		b.WriteRune(bars[i])
	}
	return b.String()
}

// paneTitle is a pane's title line.
func (m *Model) paneTitle(what string) string {
	return m.st.dim.Render("── " + what + " " + strings.Repeat("─", max(0, m.w-len(what)-4)))
}

// clean makes a line from a job or the daemon safe to draw: control
// characters (escape sequences included) become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// short says a duration in two units at most: 42s, 5m3s, 2h5m, 3d4h.
func short(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

// bytes says a size in K, M or G (powers of 1024).
func bytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%dB", n)
	case n < 1<<20:
		return fmt.Sprintf("%.0fK", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
}
