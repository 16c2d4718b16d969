package jobs

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// TestLoadDirParsesOnlyChanges: a load parses again only files whose bytes
// changed, reads again only those whose stat changed or changed lately,
// and never misses an edit, not even one that keeps the size and mtime.
func TestLoadDirParsesOnlyChanges(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load := func(environ []string) map[string]*Job {
		t.Helper()
		defs, errs, err := LoadDir(dir, environ)
		if err != nil || len(errs) > 0 {
			t.Fatalf("LoadDir: %v %v", err, errs)
		}
		out := map[string]*Job{}
		for _, j := range defs {
			out[j.Name] = j
		}
		return out
	}
	env := []string{"PATH=/bin"}
	write("a.env", "COMMAND=sleep 1\n")
	write("b.env", "COMMAND=sleep 2\n")
	first := load(env)

	// Unchanged: the same definitions, not parsed again.
	again := load(env)
	if again["a"] != first["a"] || again["b"] != first["b"] {
		t.Errorf("unchanged files parsed again")
	}

	// Same size, same mtime, other bytes: seen (the file changed lately,
	// so its stat does not vouch for it).
	fi, _ := os.Stat(filepath.Join(dir, "a.env"))
	write("a.env", "COMMAND=sleep 9\n")
	os.Chtimes(filepath.Join(dir, "a.env"), fi.ModTime(), fi.ModTime())
	edited := load(env)
	if got := edited["a"].Command; len(got) != 2 || got[1] != "9" {
		t.Errorf("edit keeping size and mtime missed: COMMAND %q", got)
	}
	if edited["b"] != first["b"] {
		t.Errorf("b parsed again though unchanged")
	}

	// Another environment: everything parsed again.
	if other := load([]string{"PATH=/usr/bin"}); other["b"] == first["b"] {
		t.Errorf("b not parsed again under another environment")
	}

	// A file whose stat is as it was, read well after its last change, is
	// not even read again (Linux): shown by what the cache holds for it.
	if runtime.GOOS != "linux" {
		return
	}
	load(env)
	parseCache.Lock()
	p := parseCache.dirs[dir].files["b.env"]
	sentinel := &Job{Name: "b", Command: []string{"from-the-cache"}}
	p.job, p.sum, p.readAt = sentinel, sha256.Sum256([]byte("COMMAND=from-the-cache\n")), time.Now().Add(time.Hour).UnixNano()
	parseCache.dirs[dir].files["b.env"] = p
	parseCache.Unlock()
	if got := load(env)["b"]; got != sentinel {
		t.Errorf("b read again though its stat vouches for it")
	}
	// Its stat changes (a touch): read again.
	later := time.Now().Add(time.Minute)
	os.Chtimes(filepath.Join(dir, "b.env"), later, later)
	if got := load(env)["b"]; got == sentinel || got.Command[1] != "2" {
		t.Errorf("b not read again after its stat changed: %v", got.Command)
	}

	// The same stat, but read within racyFor of its last change: a change
	// in the same timestamp tick would leave the stat as it was, so it is
	// read again.
	load(env)
	parseCache.Lock()
	p = parseCache.dirs[dir].files["b.env"]
	p.job, p.sum, p.readAt = sentinel, sha256.Sum256([]byte("COMMAND=from-the-cache\n")), p.key.ctime+int64(time.Second)
	parseCache.dirs[dir].files["b.env"] = p
	parseCache.Unlock()
	if got := load(env)["b"]; got == sentinel {
		t.Errorf("b trusted by its stat though read within %v of its change", racyFor)
	}
}

// TestLoadDirSharesStrings: the jobs a load parses share equal strings
// and lists (keys, KEY=VALUE, command words) instead of a copy each, and
// the load keeps no table of them once done.
func TestLoadDirSharesStrings(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b"} {
		text := "COMMAND=sleep 100\nMODE=prod\nSTART_RETRIES=0\nOWN=" + name + "\n"
		if err := os.WriteFile(filepath.Join(dir, name+".env"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	defs, errs, err := LoadDir(dir, nil)
	if err != nil || len(errs) > 0 || len(defs) != 2 {
		t.Fatalf("LoadDir: %v %v %d", err, errs, len(defs))
	}
	a, b := defs[0], defs[1]
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are two copies", what, x, y)
		}
	}
	if &a.Command[0] != &b.Command[0] {
		t.Errorf("COMMAND %q: two lists", a.Command)
	}
	if &a.Keys[0] != &b.Keys[0] {
		t.Errorf("keys %q: two lists", a.Keys)
	}
	// Env differs (OWN): its equal KEY=VALUE string is one.
	if len(a.Env) != 2 || len(b.Env) != 2 {
		t.Fatalf("env %q, %q", a.Env, b.Env)
	}
	same("MODE=prod", a.Env[0], b.Env[0])
	parseCache.Lock()
	kept := parseCache.dirs[dir].shared
	parseCache.Unlock()
	if kept != nil {
		t.Errorf("the load's table of shared strings is kept after it")
	}
}
