package jobs

import (
	"testing"
	"time"
)

func TestWhyNotAdopt(t *testing.T) {
	def := &Job{Name: "web", Hash: "h1"}
	s := Survivor{Run: 7, Job: "web", Pid: 42, Start: "boot/123", Hash: "h1"}
	both := []string{StreamOut, StreamErr}
	noStart := s
	noStart.Start = ""
	noHash := s
	noHash.Hash = ""
	held := s
	held.Held = true
	ready := s
	ready.ReadyAt = time.Unix(1, 0)
	fdJob := &Job{Name: "web", Hash: "h1", ReadyFd: 3}
	for _, tc := range []struct {
		name     string
		s        Survivor
		def      *Job
		streams  []string
		others   int
		replaced bool
		want     string
	}{
		{"adopted", s, def, both, 0, false, ""},
		{"adopted, a TEST's pipe too", s, def, []string{StreamTest, StreamErr, StreamOut}, 0, false, ""},
		{"no file", s, nil, both, 0, false, "no job file by its name now"},
		{"two open runs", s, def, both, 1, false, "more than one open run of the job"},
		{"no start time", noStart, def, both, 0, false, "its process start time was not recorded"},
		{"file changed", s, &Job{Name: "web", Hash: "h2"}, both, 0, false, "its job file changed"},
		{"hash unknown", noHash, def, both, 0, false, "its job file changed"},
		{"no pipes", s, def, nil, 0, false, "its output pipes did not survive (no pipe holder, or it died too)"},
		{"stdout only", s, def, []string{StreamOut}, 0, false, "its output pipes did not survive (no pipe holder, or it died too)"},
		{"program replaced", s, def, both, 0, true, "its program was replaced"},
		{"held by STOP", held, def, both, 0, false, "its job is held by STOP (it was being stopped)"},
		{"READY=fd, not ready yet", s, fdJob, both, 0, false, "it was not ready yet, and its READY fd did not survive"},
		{"READY=fd, ready", ready, fdJob, both, 0, false, ""},
	} {
		if got := whyNotAdopt(tc.s, tc.def, tc.streams, tc.others, tc.replaced); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
