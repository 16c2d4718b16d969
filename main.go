// Command overseer keeps long-running programs alive: run as overseerd (or
// overseer -d) it is the daemon; otherwise it is the client. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"overseer/jobs"
	"overseer/sqlstore"
)

// Exit codes of the client, as README.md documents them.
const (
	exitOK       = 0 // the daemon answered OK (and RELOAD rejected no file)
	exitFailed   = 1 // the daemon answered ERR, RELOAD rejected a file, or the daemon failed
	exitUsage    = 2 // bad flags or arguments
	exitNoDaemon = 3 // no daemon answers (and this verb does not launch one)
)

// exitHeld is the daemon's exit code when another daemon holds its data
// dir: the client that launched it then waits for that one to answer.
const exitHeld = 4

// version is the release, set at link time (-ldflags -X main.version=v1.2.3);
// -version and PING report buildVersion().
var version = "dev"

// options are the settings shared by client and daemon.
type options struct {
	daemon    bool
	configDir string
	dataDir   string
	socket    string
	timeout   time.Duration
	// Client: print for a person even when stdout is no terminal (-tty),
	// without colour (-no-color); -version: print the version only.
	tty, noColor, version bool

	logMaxSize byteSize // daemon: rotate a job's log at this size
	logKeep    int      // daemon: rotated logs kept per job
	keepRuns   int      // daemon: runs kept per job in the database
	// daemon: sample the processes of jobs without METRICS_INTERVAL this
	// often (0: never); keepSamples: samples kept per job in the database.
	metricsInterval time.Duration
	keepSamples     int
	// tailLines and tailBytes bound each run's last lines kept in
	// runs.tail (0: none).
	tailLines int
	tailBytes byteSize
	// awaitReload: the daemon leaves its first reconcile to the RELOAD of
	// the client that launched it (at most awaitReloadFor).
	awaitReload bool
	cgroups     string // daemon: jobs.CgroupsAuto or jobs.CgroupsOff
	// reportFD: the daemon writes why it could not start to this descriptor
	// (a pipe from the client that launched it), and closes it once it
	// listens. 0: none.
	reportFD int
	// handoverFD: the daemon carries on from the state the daemon it
	// replaces (overseer upgrade, the same process) left on this
	// descriptor. 0: none.
	handoverFD int
	// daemonFlags are the daemon's flags set on the command line or as
	// OVERSEER_ variables, as -name value pairs: overseer install passes
	// them on to the overseerd it installs.
	daemonFlags []string
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run parses args and runs the daemon or the client, returning the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	prog := filepath.Base(args[0])
	asDaemon := prog == "overseerd"
	if asDaemon && len(args) == 3 && args[1] == jobs.HoldFlag {
		// The daemon's pipe holder, which it starts itself (README, "If
		// the daemon dies"): not a flag for people, so -help does not
		// list it.
		signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
		if err := jobs.RunHolder(args[2], 3); err != nil {
			fmt.Fprintf(stderr, "overseerd: pipe holder: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	if !asDaemon {
		prog = "overseer"
	}
	opts, c, err := parseFlags(prog, args[1:], stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return exitUsage
	}
	if opts.version {
		fmt.Fprintf(stdout, "%s %s\n", prog, buildVersion())
		if os.Getenv(versionDetailEnv) != "" {
			// What an upgrading daemon checks of its successor (upgrade.go).
			fmt.Fprintf(stdout, "schema %d\nhandover %d\n", sqlstore.SchemaVersion(), handoverVersion)
		}
		return exitOK
	}
	if asDaemon || opts.daemon {
		if len(c.rest) > 0 {
			fmt.Fprintf(stderr, "%s: the daemon takes no arguments, got %q\n", prog, c.rest[0])
			return exitUsage
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		// Our own log never kills us: while SIGPIPE is notified, a write to
		// a stderr nobody reads fails with EPIPE instead (os/signal, "SIGPIPE").
		// Notified, not ignored: exec resets a handled signal for the jobs,
		// but would pass an ignored one on. Nobody reads the channel; the
		// runtime drops what does not fit.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
		if err := runDaemon(ctx, opts, stderr); err != nil {
			fmt.Fprintf(stderr, "overseerd: %v\n", err)
			if errors.As(err, new(*heldError)) {
				return exitHeld
			}
			return exitFailed
		}
		return exitOK
	}
	return runClient(opts, c, stdout, stderr)
}

// parseFlags parses the command line (parseCommandLine) and checks the
// options; -h writes the usage to stdout.
func parseFlags(prog string, args []string, stdout io.Writer) (options, call, error) {
	o, c, cl, err := parseCommandLine(prog, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if cl.failed != nil && cl.failed != cl.root {
				writeVerbUsage(stdout, findCommand(cl.failed.Name))
			} else {
				writeUsage(stdout, prog)
			}
			return o, c, err
		}
		if cl.failed != nil && cl.failed != cl.root {
			return o, c, flagError(cl.failed, err)
		}
		if cl.failed == nil {
			return o, c, err // a verb's words: the usage says so
		}
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // drop ff's "error parsing commandline arguments"
		}
		// The flag package's only word for an unknown flag is its message.
		if typed, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			typed = strings.TrimPrefix(typed, "-")
			// A verb's own flag before any verb (overseer -json): say
			// whose it is rather than a near miss of overseer's.
			if owners := flagOwners(typed); len(owners) > 0 {
				return o, c, fmt.Errorf("%w: it is a flag of %s, after the verb\nhint: %s %s -%s", err, strings.Join(owners, ", "), prog, owners[0], typed)
			}
			var names []string
			cl.root.FlagSet.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
			if near := jobs.Nearest(typed, names); near != "" {
				err = fmt.Errorf("%w: did you mean -%s?", err, near)
			}
		}
		return o, c, fmt.Errorf("%w\nhint: %s -help lists the flags", err, prog)
	}
	fs := cl.root.FlagSet
	fs.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, "daemon:") && f.Name != "await-reload" && f.Name != "report-fd" && f.Name != "handover-fd" {
			o.daemonFlags = append(o.daemonFlags, "-"+f.Name, f.Value.String())
		}
	})
	if o.configDir, err = defaultDir(o.configDir, "XDG_CONFIG_HOME", ".config"); err != nil {
		return o, c, err
	}
	if o.dataDir, err = defaultDir(o.dataDir, "XDG_DATA_HOME", ".local/share"); err != nil {
		return o, c, err
	}
	if o.timeout <= 0 {
		return o, c, fmt.Errorf("-timeout must be more than 0, not %v", o.timeout)
	}
	if o.metricsInterval < 0 || o.metricsInterval > 0 && o.metricsInterval < jobs.MinMetricsInterval {
		return o, c, fmt.Errorf("-metrics-interval must be at least %v, or 0 for no sampling, not %v", jobs.MinMetricsInterval, o.metricsInterval)
	}
	if o.logKeep < 0 || o.logKeep > jobs.MaxLogFiles {
		return o, c, fmt.Errorf("-log-max-files must be from 0 to %d, not %d", jobs.MaxLogFiles, o.logKeep)
	}
	if o.tailLines < 0 || o.tailBytes < 0 {
		return o, c, fmt.Errorf("-tail-lines and -tail-bytes must be 0 or more, not %d and %d", o.tailLines, o.tailBytes)
	}
	if o.cgroups != jobs.CgroupsAuto && o.cgroups != jobs.CgroupsOff {
		return o, c, fmt.Errorf("-cgroups must be auto or off, not %q", o.cgroups)
	}
	if o.socket == "" {
		o.socket = filepath.Join(o.dataDir, "overseer.sock")
	}
	if o.socket, err = filepath.Abs(o.socket); err != nil {
		return o, c, err
	}
	// Check here, for client and daemon alike: connect and bind would only
	// say "invalid argument".
	if len(o.socket) > maxSocketPath {
		return o, c, fmt.Errorf("socket path %s is %d bytes, over the %d-byte limit of Unix sockets\nhint: pass a shorter -socket path (or OVERSEER_SOCKET)", o.socket, len(o.socket), maxSocketPath)
	}
	return o, c, nil
}

// newFlagSet defines the flags of overseer and overseerd, filling o.
func newFlagSet(prog string, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by run
	fs.BoolVar(&o.daemon, "d", false, "run the daemon in the foreground, logging to stderr")
	fs.StringVar(&o.configDir, "config-dir", "", "job files `dir` (default $XDG_CONFIG_HOME/overseer or ~/.config/overseer)")
	fs.StringVar(&o.dataDir, "data-dir", "", "state `dir` for database, socket and logs (default $XDG_DATA_HOME/overseer or ~/.local/share/overseer)")
	fs.StringVar(&o.socket, "socket", "", "control socket `path` (default DATA-DIR/overseer.sock)")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "how long the client waits for an answer")
	o.logMaxSize = 10 << 20 // before Var, which shows it as the default
	fs.Var(&o.logMaxSize, "log-max-size", "daemon: rotate a job's log when it reaches this `size` (e.g. 10MiB, 512KiB; 0: never)")
	fs.IntVar(&o.logKeep, "log-max-files", 5, "daemon: rotated log `files` kept per job (NAME.log.1 is the newest)")
	fs.IntVar(&o.keepRuns, "keep-runs", 1000, "daemon: `runs` kept per job in the database's history (0: all)")
	fs.DurationVar(&o.metricsInterval, "metrics-interval", 0, "daemon: sample the CPU, memory, threads and open files of every running job this often (at least 1s; 0: only jobs whose file sets METRICS_INTERVAL)")
	fs.IntVar(&o.keepSamples, "keep-samples", 1000, "daemon: resource `samples` kept per job in the database (0: all)")
	fs.IntVar(&o.tailLines, "tail-lines", jobs.DefaultTailLines, "daemon: the last `lines` of each run's stdout and stderr kept in the database's runs.tail (0: none)")
	o.tailBytes = jobs.DefaultTailBytes
	fs.Var(&o.tailBytes, "tail-bytes", "daemon: bound on the text of runs.tail, in `bytes` (e.g. 4KiB; 0: none kept)")
	fs.StringVar(&o.cgroups, "cgroups", jobs.CgroupsAuto, "daemon: `auto` runs each job in a cgroup of its own where the daemon may create one (Linux), so that all it started ends with it; off finds what it left by session and environment")
	fs.BoolVar(&o.awaitReload, "await-reload", false, "daemon: load the config dir at the first RELOAD (within 10s) rather than at once; the client launches the daemon so")
	displayFlags(fs, o)
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.IntVar(&o.handoverFD, "handover-fd", 0, "daemon: carry on from the state the daemon this one replaces left on this descriptor `fd`; overseer upgrade execs the new binary so")
	fs.IntVar(&o.reportFD, "report-fd", 0, "daemon: write why it could not start to this descriptor `fd`, and close it once listening; the client launches the daemon so")
	return fs
}

// displayFlags defines the client's flags that say how to print: among
// overseer's own, and after every verb that asks the daemon.
func displayFlags(fs *flag.FlagSet, o *options) {
	fs.BoolVar(&o.tty, "tty", false, "client: print for a person (tables, local times, colour) even when stdout is not a terminal; for tests and scripts that want the table")
	fs.BoolVar(&o.noColor, "no-color", false, "client: no colour, even on a terminal (as NO_COLOR does)")
}

// writeUsage writes how to run prog (overseer, the client, or overseerd,
// the daemon) and its flags: -h and help.
func writeUsage(w io.Writer, prog string) {
	fs := newFlagSet(prog, new(options))
	fs.SetOutput(w)
	if prog == "overseerd" {
		fmt.Fprintf(w, "usage: overseerd [flags]   (or overseer -d [flags])\n"+
			"runs the daemon in the foreground, logging to stderr, until SIGTERM, SIGINT or DIE;\n"+
			"it serves the client, overseer (overseer -h), on the socket (protocol.md)\n")
	} else {
		fmt.Fprintf(w, "usage: overseer [flags] [VERB [ARG...]]   (no verb: reload, launching overseerd if none runs)\n\n"+
			"verbs (in any case), each with its own flags before or after its words\n"+
			"(overseer VERB -h, or overseer help VERB, lists them):\n")
		writeVerbs(w)
		fmt.Fprintf(w, "\nA quoted glob ('web-*', '*') in place of NAME names many jobs for status, start,\n"+
			"stop, restart, signal, logs, history and wait.\n\n"+
			"On a terminal answers are tables with local times and coloured states; piped, one line\n"+
			"per item in stable fields (protocol.md); with -json, JSON lines (protocol.md, JSON).\n"+
			"Exit codes: 0 ok, 1 error, 2 usage, 3 no daemon.\n"+
			"The daemon is overseerd (or overseer -d): overseerd -h.\n")
	}
	if prog != "overseerd" {
		fmt.Fprintf(w, "\nflags, before the verb (-tty and -no-color after it too);")
	} else {
		fmt.Fprintf(w, "\nflags")
	}
	fmt.Fprintf(w, " each also OVERSEER_<FLAG>, e.g. OVERSEER_DATA_DIR; NO_COLOR too turns colour off:\n")
	fs.PrintDefaults()
}

// buildVersion is this program's version: the one set at link time (-X
// main.version), else the module's, with the VCS revision it was built
// from when Go recorded one.
func buildVersion() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	rev, dirty := "", ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev != "" {
		v += " (" + rev + dirty + ")"
	}
	return v
}

// maxSocketPath is sun_path's size less its NUL: 104 bytes on macOS (108 on Linux).
const maxSocketPath = 103

// defaultDir returns dir made absolute, or the XDG default: $xdgVar/overseer
// when xdgVar holds an absolute path (the XDG spec ignores relative ones),
// else $HOME/fallback/overseer.
func defaultDir(dir, xdgVar, fallback string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	if x := os.Getenv(xdgVar); filepath.IsAbs(x) {
		return filepath.Join(x, "overseer"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the default directories: $HOME is not set; set it or pass -config-dir and -data-dir")
	}
	return filepath.Join(home, fallback, "overseer"), nil
}

// tilde shortens a path under $HOME for messages.
func tilde(path string) string {
	home, err := os.UserHomeDir()
	if err != nil || home == "/" {
		return path
	}
	if rest, ok := strings.CutPrefix(path, home+"/"); ok {
		return "~/" + rest
	}
	return path
}

// byteSize is a flag value in bytes written as 1048576, 1024KiB, 1MiB, 1GiB
// (or K, KB, M, MB, G, GB, all powers of 1024).
type byteSize int64

func (b *byteSize) String() string { return jobs.FormatSize(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := jobs.ParseSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}
