package jobs

import (
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
	if none.Text() != "" {
		t.Error("no tail has text")
	}
	tl := newTail(3, 10)
	if tl.Text() != "" || tl.lines != nil {
		t.Error("an empty tail holds lines")
	}
	for i := range 5 {
		tl.add(StreamOut, []byte(fmt.Sprint(i)))
	}
	if got := tl.Text(); got != "out 2\nout 3\nout 4" {
		t.Errorf("5 lines into 3: %q", got)
	}
	tl.add(StreamErr, []byte("abcdefgh")) // 8 bytes: 3 and 4 stay (10 bytes), 2 goes
	if got := tl.Text(); got != "out 3\nout 4\nerr abcdefgh" {
		t.Errorf("bytes bound: %q", got)
	}
	tl.add(StreamErr, []byte(strings.Repeat("x", 30))) // cut at 10, the others go
	if got := tl.Text(); got != "err xxxxxxxxxx" {
		t.Errorf("long line: %q", got)
	}
	tl.add(StreamOut, []byte("123456789é")) // é would end past 10: cut before it
	if got := tl.Text(); got != "out 123456789" {
		t.Errorf("cut inside a character: %q", got)
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
	go func() { text <- tl.Text() }()
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
	if got := held.Text(); got != "out so far" {
		t.Errorf("Text of a tail whose pipe stays open = %q", got)
	}
}
