package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"overseer/jobs"
)

// exportSystemd writes one unit per file: to stdout, or with -o into that
// dir, each unit's environment beside it in UNIT.env (mode 0600).
func exportSystemd(files []exportFile, defs []*jobs.Job, a exportArgs, stdout io.Writer, say func(string, ...any)) error {
	units := make(map[string]string) // a job's name → its unit's
	for _, j := range defs {
		units[j.Name] = unitOf(j)
	}
	out := ""
	if a.out != "" {
		var err error
		if out, err = filepath.Abs(a.out); err != nil {
			return err
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			return fmt.Errorf("-o: %w", err)
		}
	}
	var leftOut []string // files whose environment values were left out
	for i := range files {
		f := &files[i]
		unit := unitFile(f.job)
		env := envComment
		switch {
		case len(f.job.Env) == 0:
		case a.secrets:
			env = envInline
		case out != "":
			env = filepath.Join(out, unit+".env")
		default:
			leftOut = append(leftOut, f.file())
		}
		text := systemdJobUnit(f, units, a.user, env)
		if out == "" {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			io.WriteString(stdout, text)
		} else {
			if env != envInline && env != envComment {
				if err := writeFileMode(env, environmentFile(f.job.Env), 0o600); err != nil {
					return err
				}
			} else if err := os.Remove(filepath.Join(out, unit+".env")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err // an earlier export's values, stale now, and maybe secret
			}
			if err := writeFileMode(filepath.Join(out, unit), text, 0o644); err != nil {
				return err
			}
			fmt.Fprintln(stdout, filepath.Join(out, unit))
		}
		sayNotes(*f, "systemd", unit, say)
	}
	if len(leftOut) > 0 {
		say("environment values left out, since they may be secrets (the units name their keys): %s\n"+
			"hint: overseer export systemd -o DIR writes them to a file beside each unit (mode 0600); -include-secrets prints them", strings.Join(leftOut, ", "))
	}
	return nil
}

// How systemdJobUnit writes a job's environment: envInline as
// Environment= lines (-include-secrets), envComment as a comment naming
// the keys only; else the path of the EnvironmentFile= holding them.
const (
	envInline  = "\x00inline"
	envComment = ""
)

// writeFileMode writes text to path with mode perm, even over a file that
// had looser modes.
func writeFileMode(path, text string, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := io.WriteString(f, text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// unitOf is the unit that runs job j: web.service, or for instance 2 of
// web.env's INSTANCES web@2.service.
func unitOf(j *jobs.Job) string {
	if j.Base != "" {
		return j.Base + "@" + strconv.Itoa(j.Index) + ".service"
	}
	return j.Name + ".service"
}

// unitFile is the unit file of j's file: web.service, or the template
// web@.service for a file with INSTANCES.
func unitFile(j *jobs.Job) string {
	if j.Base != "" {
		return j.Base + "@.service"
	}
	return j.Name + ".service"
}

// depUnits are the units of the jobs names: a name no loaded job has (a
// rejected file's) is NAME.service.
func depUnits(names []string, units map[string]string) []string {
	var out []string
	for _, n := range names {
		if u, ok := units[n]; ok {
			out = append(out, u)
		} else {
			out = append(out, n+".service")
		}
	}
	return out
}

// systemdJobUnit is the unit of f's job (systemd.unit, systemd.service,
// systemd.kill, systemd.resource-control): user units for a user manager
// (no User=, WantedBy=default.target); env says how the environment goes
// (envInline, envComment or an EnvironmentFile= path). What has no
// equivalent is added to f.notes and listed in the unit.
func systemdJobUnit(f *exportFile, units map[string]string, user bool, env string) string {
	j := f.job
	unit := unitFile(j)
	var service, unitSec []string
	add := func(sec *[]string, key, value string) { *sec = append(*sec, key+"="+value) }
	comment := func(sec *[]string, text string) { *sec = append(*sec, "# "+text) }
	note := func(key, why string) {
		if has(j, key) {
			f.notes = append(f.notes, key+": "+why)
		}
	}

	add(&unitSec, "Description", specifiers("overseer job "+f.name()+" ("+f.file()+")"))
	if deps := depUnits(j.Deps(), units); len(deps) > 0 {
		add(&unitSec, "After", strings.Join(deps, " "))
		add(&unitSec, "Wants", strings.Join(deps, " "))
	}
	if len(j.RestartWith) > 0 {
		comment(&unitSec, "RESTART_WITH: restarted (and also stopped) with these")
		add(&unitSec, "PartOf", strings.Join(depUnits(j.RestartWith, units), " "))
	}
	// More than START_LIMIT starts within START_LIMIT_INTERVAL: failed.
	if j.StartLimit > 0 {
		add(&unitSec, "StartLimitIntervalSec", unitSeconds(j.StartLimitInterval))
		add(&unitSec, "StartLimitBurst", strconv.Itoa(j.StartLimit))
	} else {
		add(&unitSec, "StartLimitIntervalSec", "0")
	}

	switch {
	case j.ReadyNotify:
		add(&service, "Type", "notify")
		add(&service, "NotifyAccess", "all")                          // overseer takes READY=1 from any process of the job
		add(&service, "TimeoutStartSec", unitSeconds(j.ReadyTimeout)) // its default too: systemd's is 90s
	default:
		add(&service, "Type", "exec")
		note("READY", "systemd knows readiness by sd_notify only (READY=notify): the unit counts as started once its program runs")
		note("READY_TIMEOUT", "applies to READY=notify only (TimeoutStartSec=)")
	}
	note("READY_INTERVAL", "no equivalent: systemd runs no readiness command")
	if j.Test != nil {
		// ExecCondition: an exit of 1 to 254 skips the start, but 255 or a
		// signal fails the unit, where any failed TEST skips the job: sh
		// makes every failure an exit 1.
		add(&service, "ExecCondition", execLine(append([]string{"/bin/sh", "-c", `"$@" || exit 1`, "sh"}, f.program(j.Test, "TEST")...)))
	}
	note("TEST_TIMEOUT", "no equivalent of its own: ExecCondition= is bounded by TimeoutStartSec=")
	note("TEST_INTERVAL", "no equivalent: ExecCondition= runs once, before each start")
	add(&service, "ExecStart", execLine(f.program(j.Command, "COMMAND")))
	if j.Dir != "" {
		add(&service, "WorkingDirectory", specifiers(j.Dir))
	} else if j.User != "" && !user {
		// overseer's default: USER's home, or / when it has none (nobody's
		// /nonexistent); "-" makes a missing one no failure, and / it is.
		add(&service, "WorkingDirectory", "-~")
	} else {
		add(&service, "WorkingDirectory", "~") // overseer's default, the user's $HOME
	}
	if user {
		note("USER", "a user unit runs as the user whose manager runs it")
		note("GROUP", "a user unit runs as the user whose manager runs it")
	} else if j.User != "" {
		add(&service, "User", specifiers(j.User))
		if j.Group != "" {
			add(&service, "Group", specifiers(j.Group))
		}
	}
	if j.Index > 0 {
		comment(&service, fmt.Sprintf("INSTANCES=%d: a template; run %s@1.service to %s@%d.service, each with its number in OVERSEER_INDEX", j.Instances, j.Base, j.Base, j.Instances))
		add(&service, "Environment", "OVERSEER_INDEX=%i")
	}
	for _, k := range envKeys(j) {
		if strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" || k[0] >= '0' && k[0] <= '9' {
			f.notes = append(f.notes, k+": systemd may ignore a variable whose name is not letters, digits and '_' (systemd 252 does, with a warning): rename it")
		}
	}
	switch env {
	case envComment:
		if len(j.Env) > 0 {
			comment(&service, "Environment left out (values may be secrets): "+strings.Join(envKeys(j), " "))
			comment(&service, "overseer export systemd -o DIR writes them to a file beside the unit; -include-secrets prints them")
		}
	case envInline:
		for _, kv := range j.Env {
			add(&service, "Environment", systemdWord(kv, false))
		}
	default:
		add(&service, "EnvironmentFile", specifiers(env))
	}

	restart := map[string]string{jobs.RestartAlways: "always", jobs.RestartOnFailure: "on-failure", jobs.RestartNever: "no"}[j.Restart]
	add(&service, "Restart", restart)
	if j.Restart == jobs.RestartOnFailure {
		comment(&service, "overseer restarts after a death by any signal; systemd takes these four for a clean exit")
		add(&service, "RestartForceExitStatus", "SIGHUP SIGINT SIGTERM SIGPIPE")
	}
	if j.Restart != jobs.RestartNever {
		// overseer waits RESTART_DELAY, doubling up to RESTART_MAX_DELAY:
		// systemd's delay goes from RestartSec to RestartMaxDelaySec in
		// RestartSteps steps (systemd 254 and later; older ones ignore both).
		add(&service, "RestartSec", unitSeconds(j.RestartDelay))
		if j.RestartMaxDelay > j.RestartDelay {
			add(&service, "RestartSteps", strconv.Itoa(doublings(j.RestartDelay, j.RestartMaxDelay)))
			add(&service, "RestartMaxDelaySec", unitSeconds(j.RestartMaxDelay))
		}
	}
	note("START_SECS", "no equivalent: systemd waits RestartSec= after every exit, however long the process ran")
	note("RESTART_RESET", "no equivalent: systemd's delay goes back to RestartSec= only when the unit is started anew")
	note("START_RETRIES", "no equivalent: StartLimitBurst= (START_LIMIT) counts every start")
	add(&service, "KillMode", "control-group") // the whole cgroup, as overseer signals the job's process group
	add(&service, "KillSignal", signalName(j.StopSignal))
	add(&service, "TimeoutStopSec", unitSeconds(j.StopTimeout))
	if j.MemoryMax > 0 {
		add(&service, "MemoryMax", strconv.FormatInt(j.MemoryMax, 10))
	}
	note("METRICS_INTERVAL", "no equivalent: systemd accounts the unit's resources itself (systemctl status, systemd-cgtop)")
	note("RESTART_ON_BINARY_CHANGE", "no equivalent: restart the unit after replacing its program")

	var b strings.Builder
	fmt.Fprintf(&b, "# %s: exported from %s by overseer export (README.md, \"Outgrowing one machine\").\n", unit, f.file())
	if len(f.notes) > 0 {
		b.WriteString("# Not carried over:\n")
		for _, n := range f.notes {
			b.WriteString("#   " + n + "\n")
		}
	}
	b.WriteString("[Unit]\n" + strings.Join(unitSec, "\n") + "\n\n")
	b.WriteString("[Service]\n" + strings.Join(service, "\n") + "\n\n")
	wantedBy := "multi-user.target"
	if user {
		wantedBy = "default.target"
	}
	b.WriteString("[Install]\nWantedBy=" + wantedBy + "\n")
	return b.String()
}

// execLine writes argv as an ExecStart= (or ExecCondition=) value: the
// program's path is not expanded ($ stays), its arguments are.
func execLine(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = systemdWord(a, i > 0)
	}
	if strings.ContainsAny(argv[0][:min(1, len(argv[0]))], "@-:+!|") && !strings.HasPrefix(words[0], `"`) {
		// A first word starting so would be read as a prefix (ExecStart=-/bin/x).
		words[0] = `"` + words[0] + `"`
	}
	return strings.Join(words, " ")
}

// specifiers escapes the % of a value systemd expands specifiers in, and
// puts a line break there as a blank: a setting is one line.
func specifiers(s string) string {
	return strings.NewReplacer("%", "%%", "\n", " ").Replace(s)
}

// signalName is sig as KillSignal= takes it: SIGTERM.
func signalName(sig syscall.Signal) string {
	return unix.SignalName(sig)
}

// doublings is how many doublings take from to max (at least 1): the
// steps of systemd's RestartSteps.
func doublings(from, max time.Duration) int {
	if from <= 0 {
		return 1
	}
	return int(math.Max(1, math.Ceil(math.Log2(float64(max)/float64(from)))))
}

// environmentFile writes env (KEY=VALUE) as an EnvironmentFile= reads it
// (systemd.exec): each value in single quotes, read as it is; one that
// holds a single quote in double quotes, with \ " ` $ escaped.
func environmentFile(env []string) string {
	var b strings.Builder
	b.WriteString("# Written by overseer export: the environment of the unit beside it.\n")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.Contains(v, "'") {
			fmt.Fprintf(&b, "%s='%s'\n", k, v)
			continue
		}
		fmt.Fprintf(&b, "%s=\"%s\"\n", k, strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", "$", `\$`).Replace(v))
	}
	return b.String()
}
