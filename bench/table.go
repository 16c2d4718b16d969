package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table is a whole run's results.
type table struct {
	floor   time.Duration
	cols    []column
	skipped []string
}

// print writes one row per figure: overseer's value, then each peer's
// with overseer's ratio to it (below 1: overseer is faster or smaller).
func (t *table) print(w io.Writer) {
	fmt.Fprintf(w, "fork+exec+wait of /bin/true from Go (the floor): %s\n", ms(t.floor))
	fmt.Fprintf(w, "(xR after a peer's figure: overseer's figure divided by it; below 1, overseer leads)\n\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"workload"}
	for _, c := range t.cols {
		head = append(head, c.name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	row := func(label string, get func(column) (float64, string)) {
		cells := []string{label}
		base, _ := get(t.cols[0])
		for i, c := range t.cols {
			v, text := get(c)
			if text == "" {
				text = "-"
			} else if i > 0 && base > 0 && v > 0 {
				text += fmt.Sprintf(" (x%.2f)", base/v)
			}
			cells = append(cells, text)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	dur := func(f func(column) time.Duration) func(column) (float64, string) {
		return func(c column) (float64, string) {
			d := f(c)
			if d == 0 {
				return 0, ""
			}
			return float64(d), ms(d)
		}
	}
	row("restart latency, median", dur(func(c column) time.Duration { return c.restartMed }))
	row("restart latency, p90", dur(func(c column) time.Duration { return c.restartP90 }))
	for _, n := range t.sizes() {
		row(fmt.Sprintf("bring-up of %d jobs", n), func(c column) (float64, string) {
			if why, ok := c.unfinished[n]; ok {
				return 0, why
			}
			return dur(func(c column) time.Duration { return c.bringUp[n] })(c)
		})
	}
	for _, n := range t.sizes() {
		row(fmt.Sprintf("memory, %d jobs: RSS", n), kb(func(c column) int64 { return c.rss[n] }))
		row(fmt.Sprintf("memory, %d jobs: PSS", n), kb(func(c column) int64 { return c.pss[n] }))
	}
	for _, n := range t.sizes() {
		row(fmt.Sprintf("OS threads, %d jobs", n), func(c column) (float64, string) {
			if c.threads[n] == 0 {
				return 0, ""
			}
			return 0, fmt.Sprint(c.threads[n])
		})
	}
	cpuRow := func(f func(column) time.Duration) func(column) (float64, string) {
		return func(c column) (float64, string) {
			return float64(f(c)), fmt.Sprintf("%.3f ms", float64(f(c))/float64(time.Millisecond))
		}
	}
	row("idle CPU", cpuRow(func(c column) time.Duration { return c.idleCPU }))
	row("idle wake-ups (context switches)", func(c column) (float64, string) {
		return 0, fmt.Sprint(c.idleWakes)
	})
	row("status round trip, median", dur(func(c column) time.Duration { return c.statusMed }))
	// References for subjects with a socket: the cell's ratio is the
	// subject's own client to it.
	ref := func(f func(column) time.Duration) func(column) (float64, string) {
		return func(c column) (float64, string) {
			if f(c) == 0 {
				return 0, ""
			}
			return 0, fmt.Sprintf("%s (client x%.2f)", ms(f(c)), float64(c.statusMed)/float64(f(c)))
		}
	}
	row("  smallest Go client, same trip", ref(func(c column) time.Duration { return c.statusSmall }))
	row("  on the socket, no client start", ref(func(c column) time.Duration { return c.statusRaw }))
	row("reload one edit", dur(func(c column) time.Duration { return c.reloadEdit }))
	// count shows a number where ok says it was measured (overseer only).
	count := func(f func(column) (n int, ok bool)) func(column) (float64, string) {
		return func(c column) (float64, string) {
			if n, ok := f(c); ok {
				return 0, fmt.Sprint(n)
			}
			return 0, ""
		}
	}
	row("  other PIDs changed", count(func(c column) (int, bool) { return c.reloadMove, c.reloadEdit != 0 }))
	if n := t.scaleSize(); n > 0 {
		row(fmt.Sprintf("STATUS of %d jobs, median", n), dur(func(c column) time.Duration { return c.scale.status }))
		row(fmt.Sprintf("no-op RELOAD, %d jobs, median", n), dur(func(c column) time.Duration { return c.scale.reload }))
		row(fmt.Sprintf("DIE (stop all), %d jobs", n), func(c column) (float64, string) {
			if c.scale.dieNote != "" {
				return 0, c.scale.dieNote
			}
			return dur(func(c column) time.Duration { return c.scale.die })(c)
		})
		row(fmt.Sprintf("relaunch after SIGKILL, %d jobs", n), dur(func(c column) time.Duration { return c.scale.relaunch }))
	}
	row("crash storm: supervisor CPU", cpuRow(func(c column) time.Duration { return c.stormCPU }))
	row("crash storm: slowest status", dur(func(c column) time.Duration { return c.stormMaxSt }))
	row("  on the socket, no client start", dur(func(c column) time.Duration { return c.stormMaxRaw }))
	row("crash storm: rows in runs", count(func(c column) (int, bool) { return c.stormRuns, c.stormRuns != 0 }))
	// Upgrade in place: overseer's alone, which peers have not (n/a).
	onlyOurs := func(f func(column) time.Duration) func(column) (float64, string) {
		return func(c column) (float64, string) {
			if f(c) == 0 {
				return 0, "n/a"
			}
			return 0, ms(f(c))
		}
	}
	for _, n := range sortedKeys(t.cols[0].upgradeGap) {
		row(fmt.Sprintf("upgrade, %d jobs: unanswered, median", n), onlyOurs(func(c column) time.Duration { return c.upgradeGap[n] }))
		row(fmt.Sprintf("upgrade, %d jobs: unanswered, worst", n), onlyOurs(func(c column) time.Duration { return c.upgradeWorst[n] }))
		row(fmt.Sprintf("upgrade, %d jobs: its answer", n), onlyOurs(func(c column) time.Duration { return c.upgradeAnswer[n] }))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range t.cols {
		fmt.Fprintf(w, "%s: %s\n", c.name, c.version)
	}
	for _, s := range t.skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
}

// scaleSize is the size the scale figures were taken at, 0 if none were.
func (t *table) scaleSize() int {
	for _, c := range t.cols {
		if c.scale.n > 0 {
			return c.scale.n
		}
	}
	return 0
}

// sizes are the job counts of any column's bring-up, finished or not.
func (t *table) sizes() []int {
	seen := map[int]bool{}
	for _, c := range t.cols {
		for n := range c.bringUp {
			seen[n] = true
		}
		for n := range c.unfinished {
			seen[n] = true
		}
	}
	return sortedKeys(seen)
}

// sortedKeys returns the job counts of m, smallest first.
func sortedKeys[V any](m map[int]V) []int {
	var out []int
	for n := range m {
		out = append(out, n)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func kb(f func(column) int64) func(column) (float64, string) {
	return func(c column) (float64, string) {
		v := f(c)
		if v == 0 {
			return 0, ""
		}
		return float64(v), fmt.Sprintf("%.1f MB", float64(v)/1024)
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
