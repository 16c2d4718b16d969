package jobs

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTail(t *testing.T) {
	if newTail(0, 100) != nil || newTail(20, 0) != nil {
		t.Error("a bound of 0 keeps a tail")
	}
	var none *tail
	if none.Text(time.Now()) != "" {
		t.Error("no tail has text")
	}
	tl := newTail(3, 10)
	if tl.Text(time.Now()) != "" || tl.lines != nil {
		t.Error("an empty tail holds lines")
	}
	for i := range 5 {
		tl.add(StreamOut, []byte(fmt.Sprint(i)))
	}
	if got := tl.Text(time.Now()); got != "out 2\nout 3\nout 4" {
		t.Errorf("5 lines into 3: %q", got)
	}
	tl.add(StreamErr, []byte("abcdefgh")) // 8 bytes: 3 and 4 stay (10 bytes), 2 goes
	if got := tl.Text(time.Now()); got != "out 3\nout 4\nerr abcdefgh" {
		t.Errorf("bytes bound: %q", got)
	}
	tl.add(StreamErr, []byte(strings.Repeat("x", 30))) // cut at 10, the others go
	if got := tl.Text(time.Now()); got != "err xxxxxxxxxx" {
		t.Errorf("long line: %q", got)
	}
	tl.add(StreamOut, []byte("123456789é")) // é would end past 10: cut before it
	if got := tl.Text(time.Now()); got != "out 123456789" {
		t.Errorf("cut inside a character: %q", got)
	}
	tl.add(StreamOut, bytes.Repeat([]byte{0x80}, 30)) // no character at all: cut at 10 all the same
	if got := tl.Text(time.Now()); got != "out "+strings.Repeat("\x80", 10) {
		t.Errorf("long line of bytes that are no UTF-8: %q", got)
	}
}

// TestTailWaitsForPipes: Text waits for the pipes still open to be read
// to their end, so the lines a process wrote just before it exited count;
// for no longer than tailWait when something holds them open.
func TestTailWaitsForPipes(t *testing.T) {
	tl := newTail(3, 100)
	tl.wait = time.Hour
	tl.opened()
	tl.opened()
	text := make(chan string)
	go func() { text <- tl.Text(time.Now()) }()
	select {
	case got := <-text:
		t.Fatalf("Text = %q while both pipes are open", got)
	case <-time.After(50 * time.Millisecond): // a margin for the failure only: Text waits for closed
	}
	tl.add(StreamOut, []byte("last words"))
	tl.closed()
	tl.add(StreamErr, []byte("really last"))
	tl.closed()
	if got := <-text; got != "out last words\nerr really last" {
		t.Errorf("Text = %q", got)
	}

	held := newTail(3, 100)
	held.opened() // never read to its end
	held.add(StreamOut, []byte("so far"))
	if got := held.Text(time.Now()); got != "out so far" {
		t.Errorf("Text of a tail whose pipe stays open = %q", got)
	}
}

// TestTailWaitFromEnd: Text waits only until tailWait after the process's
// end, so a writer that catches up with many exits of processes whose
// pipes something still holds does not wait tailWait for each.
func TestTailWaitFromEnd(t *testing.T) {
	tl := newTail(3, 100)
	tl.wait = time.Hour
	tl.opened() // held open by a leftover, never read to its end
	tl.add(StreamOut, []byte("last words"))
	text := make(chan string)
	go func() { text <- tl.Text(time.Now().Add(-2 * time.Hour)) }()
	select {
	case got := <-text:
		if got != "out last words" {
			t.Errorf("Text = %q", got)
		}
	case <-time.After(10 * time.Second): // a margin for the failure only: the wait ended an hour ago
		t.Fatal("Text waits a whole tailWait for a process that ended two tailWaits ago")
	}
}
