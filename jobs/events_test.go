package jobs

import "testing"

// TestBrokerNeverWaits: a subscriber that takes nothing never blocks
// publish; what does not fit in its queue is counted, and a filtered
// subscriber gets only its job's events.
func TestBrokerNeverWaits(t *testing.T) {
	b := newBroker()
	all, _ := b.subscribe("")
	web, _ := b.subscribe("web")
	for range eventQueue + 10 {
		b.publish(Event{Job: "web", Old: Running, New: Backoff})
		b.publish(Event{Job: "db", Old: Running, New: Backoff})
	}
	if n := len(all.Events()); n != eventQueue {
		t.Errorf("all: %d events queued, want %d", n, eventQueue)
	}
	if n := all.Dropped(); n != eventQueue+20 {
		t.Errorf("all: %d dropped, want %d", n, eventQueue+20)
	}
	if n := web.Dropped(); n != 10 {
		t.Errorf("web: %d dropped, want 10", n)
	}
	for range eventQueue {
		if e := <-web.Events(); e.Job != "web" {
			t.Fatalf("web got an event of %s", e.Job)
		}
	}
	web.Close()
	b.publish(Event{Job: "web"}) // to a closed subscription: nothing
	b.close()
	all.Close() // after the broker's close: no double close
	if _, err := b.subscribe(""); err != ErrClosed {
		t.Errorf("subscribe after close: %v, want ErrClosed", err)
	}
}
