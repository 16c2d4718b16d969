package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoadDir reads a config dir of 1000 job files, as a RELOAD does.
func BenchmarkLoadDir(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		text := fmt.Sprintf("COMMAND=server --port %d\nDIR=/tmp\nPATH=/opt/bin:${PATH}\nTOKEN=abc%d\n", 8000+i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("j%d.env", i)), []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	environ := os.Environ()
	b.ResetTimer()
	for b.Loop() {
		jobs, errs, err := LoadDir(dir, environ)
		if err != nil || len(errs) > 0 || len(jobs) != 1000 {
			b.Fatal(err, errs)
		}
	}
}

// TestLoadDirManyFiles: a dir large enough for LoadDir's goroutines gives
// every job and every file's error, errors in the files' order, as one by
// one; a second load (from what the first parsed) gives the same.
func TestLoadDirManyFiles(t *testing.T) {
	dir := t.TempDir()
	const n = 40 * loadPerWorker
	var bad []string
	for i := range n {
		text := fmt.Sprintf("COMMAND=server --port %d\n", 8000+i)
		name := fmt.Sprintf("j%04d.env", i)
		if i%97 == 0 {
			text = "NO_COMMAND=1\n"
			bad = append(bad, name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		jobs, errs, err := LoadDir(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs)+len(bad) != n || len(errs) != len(bad) {
			t.Fatalf("%d jobs, %d errors; want %d, %d", len(jobs), len(errs), n-len(bad), len(bad))
		}
		for i, e := range errs {
			if fe, ok := e.(*FileError); !ok || fe.File != bad[i] {
				t.Fatalf("error %d: %v, want one of %s", i, e, bad[i])
			}
		}
		for i, j := range jobs {
			if i > 0 && jobs[i-1].Name >= j.Name {
				t.Fatalf("jobs not sorted: %s before %s", jobs[i-1].Name, j.Name)
			}
		}
	}
}

// BenchmarkLoadDirCold reads and parses 5000 job files with nothing
// parsed before, as a daemon's first RELOAD does (bench's bring-up).
func BenchmarkLoadDirCold(b *testing.B) {
	dir := b.TempDir()
	for i := range 5000 {
		text := fmt.Sprintf("COMMAND=sleep 100000\nBENCH_JOB=b/j%d\nSTART_RETRIES=0\nSTART_LIMIT=0\n", i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("j%d.env", i)), []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	for b.Loop() {
		n++
		environ := []string{fmt.Sprintf("RUN=%d", n)} // another environment: nothing reused
		jobs, errs, err := LoadDir(dir, environ)
		if err != nil || len(errs) > 0 || len(jobs) != 5000 {
			b.Fatal(err, errs)
		}
	}
}
