package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the benchmark's code on overseer alone, tiny and quick, so
// that it cannot rot. It asserts no timing: benchmarks are not tests.
func TestSmoke(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("bench reads /proc: Linux only")
	}
	bin := filepath.Join(t.TempDir(), "overseer")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr strings.Builder
	if code := run([]string{"-quick", "-peers", "", "-overseer", bin}, &stdout, &stderr); code != 0 {
		t.Fatalf("bench: exit %d\n%s", code, stderr.String())
	}
	for _, want := range []string{"restart latency, median", "bring-up of 5 jobs", "reload one edit", "crash storm: rows in runs", "smallest Go client, same trip", "STATUS of 5 jobs", "no-op RELOAD, 5 jobs", "DIE (stop all), 5 jobs", "relaunch after SIGKILL, 5 jobs", "upgrade, 5 jobs: unanswered, median"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("no %q in:\n%s", want, stdout.String())
		}
	}
}

// TestUnfinishedCell: a peer that cannot bring up a size says so in its
// cell, beside the others' figures, rather than ending the run.
func TestUnfinishedCell(t *testing.T) {
	ov := column{name: "overseer", bringUp: map[int]time.Duration{5000: 5 * time.Second}}
	slow := column{name: "runit", bringUp: map[int]time.Duration{}, unfinished: map[int]string{5000: (&unfinishedError{running: 4000, n: 5000, limit: time.Minute}).cell()}}
	var out strings.Builder
	(&table{cols: []column{ov, slow}}).print(&out)
	if !regexp.MustCompile(`bring-up of 5000 jobs +5000.00 ms +did not finish in 1m0s \(4000 of 5000\)`).MatchString(out.String()) {
		t.Errorf("no unfinished cell in:\n%s", out.String())
	}
}
