package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
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
	for _, want := range []string{"restart latency, median", "bring-up of 5 jobs", "reload one edit", "crash storm: rows in runs", "upgrade, 5 jobs: unanswered, median"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("no %q in:\n%s", want, stdout.String())
		}
	}
}
