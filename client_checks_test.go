package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPingWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"OK overseer dev pid 7 cleanup=cgroup", []string{"OK", "overseer", "dev", "pid", "7", "cleanup=cgroup"}},
		{`OK overseer "v1 (abc)" pid 7 cleanup=marker config-dir="/a b/c" data-dir=/d`,
			[]string{"OK", "overseer", "v1 (abc)", "pid", "7", "cleanup=marker", "config-dir=/a b/c", "data-dir=/d"}},
		{`OK overseer dev pid 7 config-dir="\"q\"\xff" data-dir=/x=y`, []string{"OK", "overseer", "dev", "pid", "7", "config-dir=\"q\"\xff", "data-dir=/x=y"}},
	} {
		got, err := pingWords(tc.line)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("pingWords(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	if _, err := pingWords(`OK overseer dev pid 7 config-dir="/a b`); err == nil {
		t.Errorf("an unclosed quote is not an error")
	}
}

// TestCheckServes asks a listener that answers PING as daemons of this
// and older versions do.
func TestCheckServes(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	if err := os.Mkdir(conf, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := options{socket: filepath.Join(dir, "s.sock"), configDir: conf, timeout: 5 * time.Second}
	reload := request{verb: "RELOAD"}
	var stderr strings.Builder
	if _, refused := checkServes(opts, reload, &stderr); refused {
		t.Errorf("refused with no daemon: %s", &stderr)
	}
	l, err := net.Listen("unix", opts.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	answers := make(chan string)
	go func() {
		for a := range answers {
			c, err := l.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte(a))
			c.Close()
		}
	}()
	defer close(answers)
	for _, tc := range []struct {
		answer, stderr string
		refused        bool
	}{
		{"OK overseer dev pid 42 cleanup=cgroup\n", "", false}, // older: says no dir
		{"OK overseer dev pid 42 cleanup=cgroup config-dir=" + conf + "/ data-dir=/d\n", "", false},
		{"OK overseer dev pid 42 cleanup=cgroup config-dir=" + strconv.Quote(conf+"/../conf") + " data-dir=/d\n", "", false},
		{"OK overseer dev pid 42 cleanup=cgroup config-dir=\"/elsewhere/a b\" data-dir=/d\n",
			"overseer: overseerd (pid 42) serves /elsewhere/a b, not " + conf + ": use -data-dir for a second daemon\n", true},
		{"ERR internal error\n", "", false},
	} {
		answers <- tc.answer
		stderr.Reset()
		code, refused := checkServes(opts, reload, &stderr)
		if refused != tc.refused || stderr.String() != tc.stderr || refused && code != exitFailed {
			t.Errorf("answer %q: refused %v (exit %d), stderr %q; want %v, %q", tc.answer, refused, code, &stderr, tc.refused, tc.stderr)
		}
	}
	// Other verbs are not checked: nothing is asked.
	if _, refused := checkServes(opts, request{verb: "STATUS"}, &stderr); refused {
		t.Errorf("STATUS checked")
	}
}

func TestSameDir(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{real, real + "/", true},
		{real, filepath.Join(dir, "link"), true},
		{filepath.Join(real, "missing"), filepath.Join(dir, "link", "missing"), true},
		{filepath.Join(real, "missing"), filepath.Join(dir, "link", "other"), false},
		{real, dir, false},
		{real, filepath.Join(real, "missing"), false},
	} {
		if got := sameDir(tc.a, tc.b); got != tc.same {
			t.Errorf("sameDir(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}
