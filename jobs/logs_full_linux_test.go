package jobs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"overseer/internal/testdisk"
)

// TestCutLineAfterTruncation: a log emptied by someone else (": > NAME.log"
// to free space, or logrotate's copytruncate) and then cut by a full disk
// is taken back to its last whole line, not stretched to the size the sink
// remembered: no run of NUL bytes appears in it.
func TestCutLineAfterTruncation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root: skipped")
	}
	dir := t.TempDir()
	if err := testdisk.Mount(dir, "256k"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { testdisk.Unmount(dir) })
	path := filepath.Join(dir, "web.log")
	l := newLogSink(path, 0, 0)
	t0 := time.Now()
	long := append(bytes.Repeat([]byte("x"), 999), '\n')
	for range 100 {
		if err := l.write(long, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.write([]byte("kept\n"), t0); err != nil {
		t.Fatal(err)
	}
	// Fill the disk; the log's last page still has room for part of a line.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 4096); ; {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	if err := l.write(append(bytes.Repeat([]byte("y"), 8000), '\n'), t0); err == nil {
		t.Fatal("a line of 8000 bytes was written on a full disk")
	}
	l.close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "kept\n" {
		t.Errorf("the log holds %d bytes (%d of them NUL), want %q: %v", len(b), bytes.Count(b, []byte{0}), "kept\n", err)
	}
}
