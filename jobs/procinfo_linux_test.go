package jobs

import (
	"os"
	"slices"
	"testing"

	"github.com/shirou/gopsutil/v4/process"
)

// TestProcInfo: the sampler's own reading of /proc gives what gopsutil,
// which it replaced on Linux, gives for the same process.
func TestProcInfo(t *testing.T) {
	pid := int32(os.Getpid())
	p := &process.Process{Pid: pid}
	pids, err := allPids()
	if err != nil || !slices.Contains(pids, pid) {
		t.Fatalf("allPids: %v, without this process %d", err, pid)
	}
	info, err := readProcInfo(pid)
	if err != nil {
		t.Fatal(err)
	}
	times, err := p.Times()
	if err != nil {
		t.Fatal(err)
	}
	if want := times.User + times.System; info.cpu > want+0.05 || info.cpu < want-0.05 {
		t.Errorf("cpu %.2f s, gopsutil %.2f s", info.cpu, want)
	}
	if n, _ := p.NumThreads(); info.threads <= 0 || info.threads > int(n)+2 || info.threads < int(n)-2 {
		t.Errorf("threads %d, gopsutil %d", info.threads, n)
	}
	rss, err := residentBytes(pid)
	m, err2 := p.MemoryInfo()
	if err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	if d := rss - int64(m.RSS); rss <= 0 || d > 1<<20 || d < -1<<20 {
		t.Errorf("rss %d, gopsutil %d", rss, m.RSS)
	}
	files, err := openFiles(pid)
	want, _ := p.NumFDs()
	if err != nil || files <= 0 || files > int(want)+1 || files < int(want)-1 {
		t.Errorf("open files %d (%v), gopsutil %d", files, err, want)
	}
	if _, err := readProcInfo(1 << 30); err == nil {
		t.Error("no error for a pid that is no process")
	}
}
