package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"howett.net/plist"
)

// Start at login (README.md): overseer install writes a systemd unit or a
// LaunchAgent that runs this binary as overseerd, and has the service
// manager start it; overseer uninstall undoes it. Client only: no request
// goes to a daemon.

const (
	unitName    = "overseerd.service"
	launchLabel = "overseerd"
	// stopTimeout is how long the service manager lets overseerd stop its
	// jobs (each within its STOP_TIMEOUT, in parallel) before it kills
	// what is left.
	stopTimeout = 120
)

// runService runs `overseer install` and `overseer uninstall` (verb):
// dry (-n) prints the file install would write; userName (-user) is the
// system unit's user.
func runService(opts options, verb string, dry bool, userName string, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "overseer: %s: %v\n", verb, err)
		return code
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return fail(exitFailed, fmt.Errorf("find overseer's own binary: %w", err))
	}
	home, _ := os.UserHomeDir()
	svc, err := newService(serviceParams{
		goos: runtime.GOOS, uid: os.Geteuid(), home: home, xdgConfig: os.Getenv("XDG_CONFIG_HOME"),
		exe: exe, user: userName, opts: opts,
	})
	if err != nil {
		return fail(exitUsage, err)
	}
	switch {
	case dry:
		stdout.Write(svc.text)
		return exitOK
	case verb == "install":
		err = svc.install(opts.socket, runCommand(stderr), stdout)
	default:
		err = svc.uninstall(runCommand(stderr), stdout)
	}
	if err != nil {
		return fail(exitFailed, err)
	}
	return exitOK
}

// runCommand runs a service manager's command, its output on stderr.
func runCommand(stderr io.Writer) func(argv []string) error {
	return func(argv []string) error {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		return cmd.Run()
	}
}

// serviceParams are what the service file depends on.
type serviceParams struct {
	goos      string
	uid       int    // effective: 0 writes a system unit
	home      string // the invoking user's
	xdgConfig string // $XDG_CONFIG_HOME
	exe       string // overseer's binary, absolute, links resolved
	user      string // -user: the system unit's User=
	opts      options
}

// service is a unit or a plist and how to start and stop it.
type service struct {
	path    string     // where the file goes
	text    []byte     // what it holds
	start   [][]string // run after writing it, in order
	stop    [][]string // run before removing it
	removed [][]string // run after removing it
	running string     // what install says once started
	logDir  string     // made before starting: the plist's log goes there
}

// newService decides what install writes and runs; it touches nothing.
func newService(p serviceParams) (*service, error) {
	if p.user != "" && (p.uid != 0 || p.goos != "linux") {
		return nil, errors.New("-user is for a system unit, which root installs on Linux")
	}
	o := p.opts
	if p.user != "" {
		// The defaults were computed from root's environment: the user's
		// own defaults are meant (flags given still win).
		u, err := user.Lookup(p.user)
		if err != nil {
			return nil, fmt.Errorf("-user %s: %v", p.user, err)
		}
		o = forUser(o, u.HomeDir)
	}
	args := append([]string{p.exe, "-d", "-config-dir", o.configDir, "-data-dir", o.dataDir, "-socket", o.socket}, o.daemonFlags...)
	switch p.goos {
	case "linux":
		if p.home == "" && p.uid != 0 {
			return nil, errors.New("$HOME is not set: cannot tell where your systemd user units go")
		}
		return systemdService(p, args), nil
	case "darwin":
		if p.uid == 0 {
			return nil, errors.New("a LaunchAgent is per user: run overseer install as the user whose jobs it keeps, not as root")
		}
		if p.home == "" {
			return nil, errors.New("$HOME is not set: cannot tell where your LaunchAgents go")
		}
		text, err := launchAgent(args, filepath.Join(o.dataDir, "overseerd.log"))
		if err != nil {
			return nil, err
		}
		path := filepath.Join(p.home, "Library", "LaunchAgents", launchLabel+".plist")
		domain := "gui/" + strconv.Itoa(p.uid)
		return &service{
			path: path, text: text, logDir: o.dataDir,
			start:   [][]string{{"launchctl", "bootstrap", domain, path}},
			stop:    [][]string{{"launchctl", "bootout", domain + "/" + launchLabel}},
			running: "overseerd runs now, and at each login; its log is " + tilde(filepath.Join(o.dataDir, "overseerd.log")),
		}, nil
	}
	return nil, fmt.Errorf("no service manager overseer knows on %s: start overseerd from your own startup scripts", p.goos)
}

// forUser replaces, in o, the invoking user's default dirs by those of the
// user whose home is home.
func forUser(o options, home string) options {
	ownConfig, _ := defaultDir("", "XDG_CONFIG_HOME", ".config")
	ownData, _ := defaultDir("", "XDG_DATA_HOME", ".local/share")
	defaultSocket := o.socket == filepath.Join(o.dataDir, "overseer.sock")
	if o.configDir == ownConfig {
		o.configDir = filepath.Join(home, ".config", "overseer")
	}
	if o.dataDir == ownData {
		o.dataDir = filepath.Join(home, ".local", "share", "overseer")
	}
	if defaultSocket {
		o.socket = filepath.Join(o.dataDir, "overseer.sock")
	}
	return o
}

// systemdService is a user unit, or as root a system unit.
func systemdService(p serviceParams, args []string) *service {
	ctl := []string{"systemctl", "--user"}
	dir := filepath.Join(p.home, ".config", "systemd", "user")
	if filepath.IsAbs(p.xdgConfig) {
		dir = filepath.Join(p.xdgConfig, "systemd", "user")
	}
	wantedBy, journal, when := "default.target", "journalctl --user -u overseerd", "at each login"
	if p.uid == 0 {
		ctl, dir = []string{"systemctl"}, "/etc/systemd/system"
		wantedBy, journal, when = "multi-user.target", "journalctl -u overseerd", "at each boot"
	}
	with := func(a ...string) []string { return append(append([]string{}, ctl...), a...) }
	return &service{
		path:    filepath.Join(dir, unitName),
		text:    []byte(systemdUnit(args, p.user, wantedBy)),
		start:   [][]string{with("daemon-reload"), with("enable", "--now", unitName)},
		stop:    [][]string{with("disable", "--now", unitName)},
		removed: [][]string{with("daemon-reload")},
		running: "overseerd runs now, and " + when + "; " + journal + " shows its log",
	}
}

// systemdUnit is the unit's text: args run as the service, as user when
// not "" (User=), started by wantedBy.
func systemdUnit(args []string, user, wantedBy string) string {
	words := make([]string, len(args))
	for i, a := range args {
		// The program's path is not expanded: only its % are special.
		words[i] = systemdWord(a, i > 0)
	}
	var b strings.Builder
	b.WriteString("# Written by overseer install; overseer uninstall removes it (README.md, \"Start at login\").\n")
	b.WriteString("[Unit]\nDescription=overseerd: keeps the jobs of " + strings.NewReplacer("%", "%%", "\n", " ").Replace(args[3]) + " running\n\n")
	b.WriteString("[Service]\nType=simple\n")
	if user != "" {
		b.WriteString("User=" + user + "\n")
	}
	b.WriteString("ExecStart=" + strings.Join(words, " ") + "\n")
	b.WriteString("Restart=on-failure\n")
	b.WriteString("# overseerd stops its jobs itself on SIGTERM (STOP_SIGNAL, then KILL after\n" +
		"# STOP_TIMEOUT). mixed: SIGTERM to overseerd alone; SIGKILL to what is left\n" +
		"# in the unit's cgroup only once overseerd has exited, or after TimeoutStopSec,\n" +
		"# which must outlast the longest STOP_TIMEOUT of your jobs.\n")
	b.WriteString("KillMode=mixed\nTimeoutStopSec=" + strconv.Itoa(stopTimeout) + "\n")
	b.WriteString("# overseerd runs each job in a cgroup of its own, under the unit's.\nDelegate=yes\n\n")
	b.WriteString("[Install]\nWantedBy=" + wantedBy + "\n")
	return b.String()
}

// systemdWord writes one word of a command line as systemd reads it
// (systemd.service, "Command lines"): % is a specifier and $ a variable
// unless doubled; a word with blanks, quotes, backslashes or control
// characters goes in double quotes, C-escaped.
func systemdWord(s string, expanded bool) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if expanded {
		s = strings.ReplaceAll(s, "$", "$$")
	}
	plain := s != "" && s != ";" && utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\'
	}) < 0
	if plain {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i]) // a byte that is not UTF-8, as it is
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// agent is a LaunchAgent, as launchd.plist(5) describes it.
type agent struct {
	Label            string
	ProgramArguments []string
	RunAtLoad        bool
	// KeepAlive {SuccessfulExit: false}: started again when it fails,
	// not after DIE (exit 0), as Restart=on-failure.
	KeepAlive         map[string]bool
	ExitTimeOut       int // seconds between SIGTERM and SIGKILL, as TimeoutStopSec
	StandardOutPath   string
	StandardErrorPath string
}

// launchAgent is the plist of a LaunchAgent that runs args, logging to log.
func launchAgent(args []string, log string) ([]byte, error) {
	return plist.MarshalIndent(agent{
		Label:             launchLabel,
		ProgramArguments:  args,
		RunAtLoad:         true,
		KeepAlive:         map[string]bool{"SuccessfulExit": false},
		ExitTimeOut:       stopTimeout,
		StandardOutPath:   log,
		StandardErrorPath: log,
	}, plist.XMLFormat, "\t")
}

// install writes the file and starts the service, saying so step by step.
// It refuses while an overseerd answers on socket: the service's own
// daemon could not take the lock.
func (s *service) install(socket string, run func([]string) error, stdout io.Writer) error {
	if conn, err := dial(socket); err == nil {
		what := "an overseerd"
		if pid, err := peerPID(conn.(*net.UnixConn)); err == nil {
			what = fmt.Sprintf("overseerd (pid %d)", pid)
		}
		conn.Close()
		return fmt.Errorf("%s already serves %s: the service could not start its own\nhint: overseer die stops it and its jobs; then run overseer install again, and the service starts them", what, tilde(socket))
	}
	if s.logDir != "" {
		if err := os.MkdirAll(s.logDir, 0o700); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(s.path, s.text, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", tilde(s.path))
	for _, argv := range s.start {
		if err := run(argv); err != nil {
			return fmt.Errorf("%s: %v\nhint: %s is written; overseer uninstall removes it", strings.Join(argv, " "), err, tilde(s.path))
		}
		fmt.Fprintf(stdout, "ran %s\n", strings.Join(argv, " "))
	}
	fmt.Fprintln(stdout, s.running)
	return nil
}

// uninstall stops the service and removes the file, saying so step by
// step. With no file, it says so and does nothing: not an error.
func (s *service) uninstall(run func([]string) error, stdout io.Writer) error {
	if _, err := os.Lstat(s.path); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "nothing to uninstall: %s does not exist\n", tilde(s.path))
		return nil
	}
	for _, argv := range s.stop {
		if err := run(argv); err != nil {
			return fmt.Errorf("%s: %v\nhint: if the service manager does not run, remove %s yourself", strings.Join(argv, " "), err, tilde(s.path))
		}
		fmt.Fprintf(stdout, "ran %s\n", strings.Join(argv, " "))
	}
	if err := os.Remove(s.path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %s\n", tilde(s.path))
	for _, argv := range s.removed {
		if err := run(argv); err != nil {
			return fmt.Errorf("%s: %v", strings.Join(argv, " "), err)
		}
		fmt.Fprintf(stdout, "ran %s\n", strings.Join(argv, " "))
	}
	return nil
}
