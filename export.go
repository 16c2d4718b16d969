package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"overseer/jobs"
)

// overseer export (README, "Outgrowing one machine"): the jobs of the
// config dir as systemd units or one Nomad job, read by the client itself
// through the daemon's parser (jobs.LoadChecked); no daemon is asked.

// exportTargets are the engines export writes for.
var exportTargets = []string{"systemd", "nomad"}

// exportArgs is what `overseer export` was given.
type exportArgs struct {
	target  string   // systemd or nomad
	names   []string // NAME|GLOB...; none: every job
	user    bool     // systemd: user units (-user)
	out     string   // systemd: write the units to this dir (-o)
	secrets bool     // -include-secrets
	exec    bool     // nomad: the exec driver, not raw_exec (-exec)
}

// exportFile is one job file to export: its job (for a file with
// INSTANCES, its first instance) and what is said of it on stderr.
type exportFile struct {
	job   *jobs.Job
	notes []string // "KEY: why", in the order of the keys
}

// file is the job file's base name, web.env.
func (f exportFile) file() string { return f.job.File() }

// name is the job's name, or for a file with INSTANCES the file's.
func (f exportFile) name() string { return strings.TrimSuffix(f.file(), ".env") }

// runExport reads the config dir and writes its jobs for a.target:
// rejected files are reported as a reload reports them and skipped (exit
// 1), and what does not carry over is said per file on stderr.
func runExport(opts options, a exportArgs, stdout, stderr io.Writer) int {
	say := func(format string, args ...any) { fmt.Fprintf(stderr, "overseer: export: "+format+"\n", args...) }
	defs, errs, err := jobs.LoadChecked(opts.configDir, os.Environ())
	if err != nil {
		say("%v", err)
		return exitFailed
	}
	files, rejected, code := selectExport(defs, errs, a.names, say)
	for _, err := range rejected {
		fmt.Fprintf(stderr, "overseer: rejected %s\n", oneLine(err.Error()))
		code = exitFailed
	}
	for _, f := range files {
		for _, w := range f.job.Warnings {
			say("warning: %s", w)
		}
	}
	if len(files) == 0 {
		if code == exitOK {
			say("no jobs in %s", tilde(opts.configDir))
		}
		return code
	}
	var werr error
	switch a.target {
	case "systemd":
		werr = exportSystemd(files, defs, a, stdout, say)
	case "nomad":
		werr = exportNomad(files, a, stdout, say)
	}
	if werr != nil {
		say("%v", werr)
		return exitFailed
	}
	return code
}

// selectExport picks the files the names and globs name (none: all), one
// per file, and the rejections of the files they name. A name or glob
// that names nothing is said, and makes the exit code 1.
func selectExport(defs []*jobs.Job, errs []error, names []string, say func(string, ...any)) ([]exportFile, []error, int) {
	code := exitOK
	used := make([]bool, len(names))
	picked := func(name, base string) bool {
		hit := len(names) == 0
		for i, n := range names {
			if ok, _ := path.Match(n, name); ok || n == base && base != "" {
				used[i], hit = true, true
			}
		}
		return hit
	}
	for _, n := range names {
		if p := jobs.GlobProblem(n); jobs.IsGlob(n) && p != "" {
			say("bad glob %q: %s", clip(n), p)
			return nil, nil, exitUsage
		}
	}
	var files []exportFile
	for _, j := range defs {
		if j.Index > 1 {
			continue // a file with INSTANCES is one unit, one group
		}
		if picked(j.Name, j.Base) {
			files = append(files, exportFile{job: j})
		}
	}
	var rejected []error
	for _, err := range errs {
		var fe *jobs.FileError
		if errors.As(err, &fe) && !picked(strings.TrimSuffix(fe.File, ".env"), "") {
			continue
		}
		rejected = append(rejected, err)
	}
	for i, n := range names {
		if !used[i] {
			if jobs.IsGlob(n) {
				say("no job matches %q", clip(n))
			} else {
				say("no job named %q", clip(n))
			}
			code = exitFailed
		}
	}
	return files, rejected, code
}

// has says whether the job's file sets key.
func has(j *jobs.Job, key string) bool { return slices.Contains(j.Keys, key) }

// program is the absolute path of argv[0] as the job's start would find
// it (on the job's PATH), or argv[0] as it is with a note when it is not
// found here: systemd and Nomad want an absolute path.
func (f *exportFile) program(argv []string, key string) []string {
	if filepath.IsAbs(argv[0]) {
		return argv
	}
	p, err := jobs.LookPath(argv[0], append(os.Environ(), f.job.Env...))
	if err != nil {
		f.notes = append(f.notes, fmt.Sprintf("%s: its program %q is not on PATH here: left as it is; give an absolute path", key, clip(argv[0])))
		return argv
	}
	if p, err = filepath.Abs(p); err != nil {
		return argv
	}
	return append([]string{p}, argv[1:]...)
}

// envKeys are the names of the job's environment keys (its file's keys
// that are not overseer's), in order.
func envKeys(j *jobs.Job) []string {
	var keys []string
	for _, kv := range j.Env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return keys
}

// unitSeconds writes d as systemd and people read it: 500ms, 10s, 1min
// would be 60s; whole units, never Go's 1m0s.
func unitSeconds(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return fmt.Sprintf("%dus", d/time.Microsecond)
}

// sayNotes writes what of f does not carry over to target, on stderr,
// where the unit or job also lists it.
func sayNotes(f exportFile, target, where string, say func(string, ...any)) {
	if len(f.notes) == 0 {
		return
	}
	say("%s: not carried over to %s (listed in %s):", f.file(), target, where)
	for _, n := range f.notes {
		say("  %s", n)
	}
}

// exportCall checks export's words and flags: the target first (a near
// miss named), then names and globs; -user and -o are systemd's, -exec
// Nomad's.
func exportCall(c cliArgs) (exportArgs, error) {
	a := c.export
	usage := errors.New("usage: overseer " + syntax(findCommand("EXPORT")))
	if len(c.words) == 0 {
		return a, usage
	}
	a.target, a.names = strings.ToLower(c.words[0]), c.words[1:]
	if !slices.Contains(exportTargets, a.target) {
		msg := fmt.Sprintf("unknown target %q: use systemd or nomad", clip(c.words[0]))
		if near := jobs.Nearest(a.target, exportTargets); near != "" {
			msg = fmt.Sprintf("unknown target %q: did you mean %s?", clip(c.words[0]), near)
		}
		return a, errors.New(msg)
	}
	switch {
	case a.target == "nomad" && a.user:
		return a, errors.New("-user is for systemd units: a Nomad task runs as its job file's USER")
	case a.target == "nomad" && a.out != "":
		return a, errors.New("-o is for systemd units: the Nomad job is one file, written to stdout")
	case a.target == "systemd" && a.exec:
		return a, errors.New("-exec is for Nomad's driver")
	}
	return a, nil
}
