package jobs

import (
	"testing"
	"unsafe"
)

// TestPerJobSizes: a supervisor and a Job stay within the size classes
// they were brought into (BENCHMARKS.md, issue 16: 5000 jobs hold 5000 of
// each): a supervisor of 897 bytes takes 1024, a Job of 513 takes 576.
// Flags side by side, fields few jobs use behind a pointer.
func TestPerJobSizes(t *testing.T) {
	if n := unsafe.Sizeof(supervisor{}); n > 896 {
		t.Errorf("a supervisor is %d bytes: over its 896-byte size class", n)
	}
	if n := unsafe.Sizeof(Job{}); n > 512 {
		t.Errorf("a Job is %d bytes: over its 512-byte size class", n)
	}
}
