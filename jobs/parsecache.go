package jobs

import (
	"bytes"
	"crypto/sha256"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// parsed is what Parse made of a file's bytes. A reload parses again
// only the files whose bytes changed, and reads again only those whose
// stat changed or changed lately (at 5000 jobs, parsing, then opening and
// reading, were most of a no-op RELOAD). Parse is a pure function of the
// name, the bytes and the environment; what loadFile checks beyond them
// (USER, DIR) is checked at every load. Jobs are never changed once made
// (a change makes a copy), so one can be handed out again.
type parsed struct {
	sum    [sha256.Size]byte // of the bytes, which are not kept (at 5000 jobs, 2.5 MB)
	job    *Job
	err    error
	key    statOf // the file's stat when it was read; zero: unknown
	readAt int64  // when it was read, Unix ns
}

// statOf is what statKey reads of a file (Linux).
type statOf struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // ns
}

// racyFor is how long after its last change a file's stat does not vouch
// for its bytes: a change within the same timestamp tick as the read
// (coarse kernel clocks, filesystems with 1 or 2 s times) leaves the stat
// as it was. A file read this long after its ctime is re-read only when
// its stat changes.
const racyFor = 2 * time.Second

// unchanged returns what the last load of dir made of file when its stat
// says it is as it was then, and was stable well before it was read.
func (last *dirParses) unchanged(next *dirParses, file string, fi os.FileInfo) (*Job, error, bool) {
	if last == nil {
		return nil, nil, false
	}
	p, ok := last.files[file]
	key, known := statKey(fi)
	if !ok || !known || p.key != key || p.key.ctime > p.readAt-int64(racyFor) {
		return nil, nil, false
	}
	next.put(file, p)
	return p.job, p.err, true
}

// parseCache holds, by config dir, what the last LoadDir of it parsed, by
// file, and the environment it parsed with.
var parseCache = struct {
	sync.Mutex
	dirs map[string]*dirParses
}{dirs: map[string]*dirParses{}}

type dirParses struct {
	environ []string
	mu      sync.Mutex // LoadDir's goroutines fill files of the next load
	files   map[string]parsed
	shared  *sharing // while the load runs; nil once kept (keep)
}

// sharing is what the jobs a load parses share: equal strings (keys,
// KEY=VALUE, command words) as one string, equal lists (Keys, COMMAND,
// Env) as one slice, which is safe since a Job is never changed once
// made. 5000 jobs made from one template held 5000 copies of each
// (~1 MB, BENCHMARKS.md, issue 16). It lives for one load only, so the
// strings of a job since removed are not kept; a job parsed by a later
// load shares with the others of that load.
type sharing struct {
	mu    sync.Mutex // LoadDir's goroutines parse side by side
	strs  map[string]string
	lists map[string][]string
}

// job makes j, just parsed, share what earlier jobs of the load hold.
func (sh *sharing) job(j *Job) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	j.Shell, j.User, j.Group, j.Dir = sh.str(j.Shell), sh.str(j.User), sh.str(j.Group), sh.str(j.Dir)
	j.Command, j.Test, j.ReadyCommand = sh.list(j.Command), sh.list(j.Test), sh.list(j.ReadyCommand)
	j.Env, j.Keys = sh.list(j.Env), sh.list(j.Keys)
	j.After, j.RestartWith = sh.list(j.After), sh.list(j.RestartWith)
}

func (sh *sharing) str(s string) string {
	if s == "" {
		return ""
	}
	if t, ok := sh.strs[s]; ok {
		return t
	}
	sh.strs[s] = s
	return s
}

// list returns a list equal to l that an earlier job holds, or else l,
// its strings shared.
func (sh *sharing) list(l []string) []string {
	if len(l) == 0 {
		return l
	}
	// A job file holds no NUL (Parse refuses it): the words joined by
	// NUL, behind their count, name the list.
	key := strconv.Itoa(len(l)) + "\x00" + strings.Join(l, "\x00")
	if t, ok := sh.lists[key]; ok {
		return t
	}
	for i, w := range l {
		l[i] = sh.str(w)
	}
	sh.lists[key] = l
	return l
}

// put records p as what this load made of file.
func (next *dirParses) put(file string, p parsed) {
	next.mu.Lock()
	next.files[file] = p
	next.mu.Unlock()
}

// parses returns what the last load of dir parsed (nil: nothing usable)
// and the set the current load fills, which replaces it once done.
func parses(dir string, environ []string) (last, next *dirParses) {
	parseCache.Lock()
	defer parseCache.Unlock()
	last = parseCache.dirs[dir]
	if last != nil && !slices.Equal(last.environ, environ) {
		last = nil
	}
	shared := &sharing{strs: map[string]string{}, lists: map[string][]string{}}
	return last, &dirParses{environ: environ, files: map[string]parsed{}, shared: shared}
}

// keep makes next what the following load of dir starts from.
func keep(dir string, next *dirParses) {
	parseCache.Lock()
	defer parseCache.Unlock()
	next.shared = nil
	parseCache.dirs[dir] = next
}

// parse is Parse of src, read at readAt from a file whose stat was fi
// before, or what it gave for the same bytes last time.
func (last *dirParses) parse(next *dirParses, file, name string, src []byte, environ []string, fi os.FileInfo, readAt time.Time) (*Job, error) {
	key, _ := statKey(fi)
	sum := sha256.Sum256(src)
	if last != nil {
		if p, ok := last.files[file]; ok && p.sum == sum {
			p.key, p.readAt = key, readAt.UnixNano()
			next.put(file, p)
			return p.job, p.err
		}
	}
	j, err := Parse(name, bytes.NewReader(src), environ)
	if err == nil {
		next.shared.job(j)
	}
	next.put(file, parsed{sum: sum, job: j, err: err, key: key, readAt: readAt.UnixNano()})
	return j, err
}
