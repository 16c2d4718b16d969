package jobs

import (
	"strings"
	"testing"
	"time"
)

func TestParseNotice(t *testing.T) {
	long := strings.Repeat("é", maxStatusText) // two bytes each: cut inside one
	for _, tc := range []struct {
		msg  string
		want notice
	}{
		{"READY=1", notice{ready: true}},
		{"READY=1\nSTATUS=serving\n", notice{ready: true, status: "serving", set: true}},
		{"STATUS=", notice{set: true}},
		{"READY=0\nMAINPID=1\nWATCHDOG=1", notice{}},
		{"READY=1x", notice{}},
		{"garbage", notice{}},
		{"STATUS=" + long, notice{status: strings.Repeat("é", maxStatusText/2) + "...", set: true}},
	} {
		if got := parseNotice(tc.msg); got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.msg, got, tc.want)
		}
	}
}

func TestNotifyRoutes(t *testing.T) {
	var r notifyRoutes
	// A message sent before its job registered is delivered at registration;
	// another session's is not.
	r.deliver(10, notice{ready: true})
	r.deliver(11, notice{status: "x", set: true})
	c := make(chan notice, maxNotifyRate+10)
	r.add(10, c, nil)
	if len(c) != 1 || (<-c) != (notice{ready: true}) {
		t.Fatalf("early message not delivered once")
	}
	// Beyond maxNotifyRate in a second, messages are dropped.
	for range maxNotifyRate + 5 {
		r.deliver(10, notice{set: true})
	}
	if len(c) != maxNotifyRate-1 { // the early one counted
		t.Errorf("%d delivered in a second, want %d", len(c), maxNotifyRate-1)
	}
	// A full channel never blocks the reader.
	full := make(chan notice)
	r.add(12, full, nil)
	r.deliver(12, notice{ready: true})
	// The unclaimed are bounded.
	for i := range 3 * unclaimed {
		r.deliver(1000+i, notice{})
	}
	if len(r.early) != unclaimed {
		t.Errorf("%d unclaimed kept, want %d", len(r.early), unclaimed)
	}
	r.remove(10)
	r.deliver(10, notice{})
	if _, ok := r.routes[10]; ok {
		t.Errorf("route kept after remove")
	}
	var rt route
	now := time.Now()
	ch := make(chan notice, 2*maxNotifyRate)
	rt.c = ch
	for range maxNotifyRate + 1 {
		rt.send(notice{}, now)
	}
	rt.send(notice{}, now.Add(time.Second))
	if len(ch) != maxNotifyRate+1 {
		t.Errorf("a new second: %d delivered, want %d", len(ch), maxNotifyRate+1)
	}
}
