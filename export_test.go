package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/hashicorp/nomad/api"

	"overseer/jobs"
)

// exportDir writes job files into a new config dir: every key overseer
// knows in every.env (USER and GROUP only as root: a reload rejects them
// otherwise), and a job it starts after.
func exportDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	every := `SHELL=/bin/sh
COMMAND=exec /bin/sleep "\$HOME" 100%
TEST=test -d /tmp
DIR=/tmp
RESTART=on-failure
STOP_SIGNAL=INT
STOP_TIMEOUT=7s
TEST_TIMEOUT=3s
TEST_INTERVAL=1m
RESTART_DELAY=2s
RESTART_MAX_DELAY=16s
RESTART_RESET=5m
START_SECS=3s
START_RETRIES=4
START_LIMIT=6
START_LIMIT_INTERVAL=2m
MEMORY_MAX=256MiB
RESTART_ON_BINARY_CHANGE=no
METRICS_INTERVAL=10s
READY_TIMEOUT=45s
AFTER=db
RESTART_WITH=db
INSTANCES=2
SECRET='hunter2 100% $x'
`
	if runtime.GOOS == "linux" {
		every += "READY=notify\n"
	} else {
		every += "READY=fd:3\n"
	}
	if os.Geteuid() == 0 {
		every += "USER=65534\nGROUP=65534\n"
	}
	files := map[string]string{
		"every.env": every,
		// Words systemd reads specially: blanks, quotes, backslashes, $, %, "".
		"db.env":  "COMMAND=/bin/echo 'a b' \"it's\" 'back\\slash' '\\$x' '100%' '' ';'\nREADY=test -d /\nREADY_INTERVAL=1s\n",
		"web.env": "COMMAND=/bin/sleep 1000\nAFTER=every\nDIR=/\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runExportCommand runs `overseer -config-dir dir export ARGS...`.
func runExportCommand(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"overseer", "-config-dir", dir, "export"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestExportNomadDecodes: the Nomad job decodes into Nomad's own API
// types, every field known to them, with the values the job files say.
func TestExportNomadDecodes(t *testing.T) {
	t.Parallel()
	dir := exportDir(t)
	for _, secrets := range []bool{false, true} {
		args := []string{"nomad"}
		if secrets {
			args = append(args, "-include-secrets", "-exec")
		}
		out, errOut, code := runExportCommand(t, dir, args...)
		if code != 0 {
			t.Fatalf("export %v: exit %d\n%s", args, code, errOut)
		}
		if !secrets && (strings.Contains(out, "hunter2") || strings.Contains(errOut, "hunter2")) {
			t.Errorf("a value of the environment was printed without -include-secrets:\n%s\n%s", out, errOut)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		var req api.JobRegisterRequest
		if err := dec.Decode(&req); err != nil {
			t.Fatalf("decode into api.JobRegisterRequest: %v\n%s", err, out)
		}
		job := req.Job
		if job == nil || *job.ID != "overseer" || *job.Type != "service" || len(job.TaskGroups) != 3 {
			t.Fatalf("job: %+v", job)
		}
		groups := make(map[string]*api.TaskGroup)
		for _, g := range job.TaskGroups {
			groups[*g.Name] = g
		}
		g := groups["every"]
		if g == nil || *g.Count != 2 || len(g.Tasks) != 2 {
			t.Fatalf("group every: %+v", g)
		}
		rp := g.RestartPolicy
		if *rp.Attempts != 6 || *rp.Interval != 2*time.Minute || *rp.Delay != 2*time.Second || *rp.Mode != "fail" {
			t.Errorf("restart policy: %d %v %v %s", *rp.Attempts, *rp.Interval, *rp.Delay, *rp.Mode)
		}
		rs := g.ReschedulePolicy
		if *rs.Delay != 2*time.Second || *rs.MaxDelay != 16*time.Second || *rs.DelayFunction != "exponential" || !*rs.Unlimited {
			t.Errorf("reschedule policy: %v %v %s %v", *rs.Delay, *rs.MaxDelay, *rs.DelayFunction, *rs.Unlimited)
		}
		test, main := g.Tasks[0], g.Tasks[1]
		driver := "raw_exec"
		if secrets {
			driver = "exec"
		}
		if test.Name != "every-test" || test.Lifecycle == nil || test.Lifecycle.Hook != "prestart" || test.Lifecycle.Sidecar {
			t.Errorf("TEST task: %+v lifecycle %+v", test, test.Lifecycle)
		}
		if main.Name != "every" || main.Lifecycle != nil || main.Driver != driver || test.Driver != driver {
			t.Errorf("task: %+v", main)
		}
		if main.Config["command"] != "/bin/sh" || !equalAny(main.Config["args"], []string{"-c", `exec /bin/sleep "$HOME" 100%`}) || main.Config["work_dir"] != "/tmp" {
			t.Errorf("task config: %#v", main.Config)
		}
		if !equalAny(test.Config["args"], []string{"-c", "test -d /tmp"}) {
			t.Errorf("TEST task config: %#v", test.Config)
		}
		if *main.KillTimeout != 7*time.Second || main.KillSignal != "SIGINT" || *main.Resources.MemoryMB != 256 {
			t.Errorf("task: kill %v %s, memory %v", *main.KillTimeout, main.KillSignal, *main.Resources.MemoryMB)
		}
		if os.Geteuid() == 0 && main.User != "65534" {
			t.Errorf("task user %q, want 65534", main.User)
		}
		if secrets {
			if main.Env["SECRET"] != "hunter2 100% $x" || main.Env["SHELL"] != "/bin/sh" || len(main.Templates) != 0 {
				t.Errorf("env with -include-secrets: %v, templates %d", main.Env, len(main.Templates))
			}
		} else {
			if len(main.Env) != 0 || len(main.Templates) != 1 || !*main.Templates[0].Envvars ||
				!strings.Contains(*main.Templates[0].EmbeddedTmpl, `nomadVar "nomad/jobs/overseer/every"`) {
				t.Errorf("env without -include-secrets: %v, templates %+v", main.Env, main.Templates)
			}
			if !strings.Contains(errOut, "every.env: nomad/jobs/overseer/every (SECRET SHELL)") {
				t.Errorf("stderr does not say where the environment goes:\n%s", errOut)
			}
		}
		for _, key := range []string{"after", "restart_with", "test_interval", "test_timeout", "metrics_interval", "start_secs", "start_retries", "restart_reset", "ready", "restart_on_binary_change"} {
			if g.Meta["overseer_not_carried_over_"+key] == "" {
				t.Errorf("the group's Meta does not list %s: %v", key, g.Meta)
			}
			if !strings.Contains(errOut, "  "+strings.ToUpper(key)+": ") {
				t.Errorf("stderr does not list %s:\n%s", strings.ToUpper(key), errOut)
			}
		}
		db := groups["db"].Tasks[0]
		if !equalAny(db.Config["args"], []string{"a b", "it's", `back\slash`, "$x", "100%", "", ";"}) {
			t.Errorf("db args: %#v", db.Config["args"])
		}
		if rp := groups["web"].RestartPolicy; *rp.Attempts != 10 || *rp.Interval != time.Minute || *rp.Mode != "fail" {
			t.Errorf("web's restart policy (the defaults): %d %v %s", *rp.Attempts, *rp.Interval, *rp.Mode)
		}
	}
}

// equalAny says whether v, a JSON array decoded as []any, holds want.
func equalAny(v any, want []string) bool {
	a, ok := v.([]any)
	if !ok || len(a) != len(want) {
		return false
	}
	for i := range a {
		if a[i] != want[i] {
			return false
		}
	}
	return true
}

// TestExportSystemdVerify: systemd accepts the exported units, system
// and user ones (systemd-analyze verify checks every setting, and that
// ExecStart's program exists: its path must read back as written).
func TestExportSystemdVerify(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the exported units are not verified by systemd here")
	}
	dir := exportDir(t)
	examples, _ := filepath.Abs("examples")
	// systemd before 254 does not know RestartSteps= and RestartMaxDelaySec=,
	// and says so; it ignores them, as the unit's comment says.
	older := regexp.MustCompile(`^\S+:\d+: Unknown key '(RestartSteps|RestartMaxDelaySec)' in section \[Service\], ignoring\.$`)
	for _, c := range []struct {
		conf, mode string
		args       []string
	}{
		{dir, "--system", nil},
		{dir, "--user", []string{"-user"}},
		{examples, "--system", nil},
		{dir, "--system", []string{"-include-secrets"}},
	} {
		out := t.TempDir()
		args := append([]string{"systemd", "-o", out}, c.args...)
		if _, errOut, code := runExportCommand(t, c.conf, args...); code != 0 {
			t.Fatalf("export %v: exit %d\n%s", args, code, errOut)
		}
		units, _ := filepath.Glob(filepath.Join(out, "*.service"))
		if len(units) < 3 {
			t.Fatalf("export %v wrote %v", args, units)
		}
		for _, u := range units {
			if strings.Contains(u, "@.service") {
				// A template is verified as one of its instances.
				inst := strings.Replace(u, "@.service", "@1.service", 1)
				os.Symlink(filepath.Base(u), inst)
				u = inst
			}
			cmd := exec.Command(analyze, c.mode, "verify", u)
			cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+out)
			b, err := cmd.CombinedOutput()
			var left []string
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if l != "" && !older.MatchString(l) {
					left = append(left, l)
				}
			}
			if err != nil || len(left) > 0 {
				text, _ := os.ReadFile(u)
				t.Errorf("systemd-analyze %s verify %s: %v\n%s\nthe unit:\n%s", c.mode, filepath.Base(u), err, b, text)
			}
		}
	}
}

// TestExecLine: ExecStart= words read back as argv: the program's path
// is not expanded (its $ stays single), the arguments are ($$, %%), and a
// program that would read as a prefix (-, @, +, !, :) is quoted.
func TestExecLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"/bin/echo", "a b", "$x", "100%", "", `q"\`, "it's", ";"}, `/bin/echo "a b" $$x 100%% "" "q\"\\" "it's" ";"`},
		{[]string{"/opt/$x/run", "%i"}, `/opt/$x/run %%i`},
		{[]string{"-bin", "x"}, `"-bin" x`},
		{[]string{"@bin"}, `"@bin"`},
		{[]string{"/a b/c"}, `"/a b/c"`},
		{[]string{"/bin/x", "\xff"}, `/bin/x "\xff"`},
	} {
		if got := execLine(c.argv); got != c.want {
			t.Errorf("execLine(%q) = %s, want %s", c.argv, got, c.want)
		}
	}
}

// TestEnvironmentFile: values go in single quotes, read as they are; one
// with a single quote in double quotes, \ " ` $ escaped.
func TestEnvironmentFile(t *testing.T) {
	t.Parallel()
	got := environmentFile([]string{"A=x y", "B=it's $HOME \"q\" \\ `c`", "C="})
	want := "# Written by overseer export: the environment of the unit beside it.\n" +
		"A='x y'\n" + "B=\"it's \\$HOME \\\"q\\\" \\\\ \\`c\\`\"\n" + "C=''\n"
	if got != want {
		t.Errorf("environmentFile:\n%s\nwant:\n%s", got, want)
	}
}

// TestNomadEnvTemplate: the template that reads a group's environment
// from its Nomad variable renders each value as one JSON string, which
// the env = true parser (go-envparse) reads back whatever it holds: a
// '#', quotes, a line break.
func TestNomadEnvTemplate(t *testing.T) {
	value := "p#ss 'q' \"x\" \\ $y <z>\nline 2"
	j, err := jobs.Parse("web", strings.NewReader("COMMAND=/bin/true\nSECRET=x\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := exportFile{job: j}
	g := nomadJobGroup(&f, exportArgs{})
	if len(g.Tasks) != 1 || len(g.Tasks[0].Templates) != 1 {
		t.Fatalf("tasks %+v", g.Tasks)
	}
	type tuple struct{ K, V string }
	funcs := template.FuncMap{
		"nomadVar": func(path string) any {
			return struct{ Tuples []tuple }{[]tuple{{"SECRET", value}, {"PLAIN", "a"}}}
		},
		// consul-template's toJSON
		"toJSON": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
	}
	tmpl, err := template.New("env").Funcs(funcs).Parse(g.Tasks[0].Templates[0].EmbeddedTmpl)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		k, v, _ := strings.Cut(line, "=")
		var s string
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			t.Fatalf("line %q: its value is not one JSON string: %v\n%s", line, err, b.String())
		}
		got[k] = s
	}
	if got["SECRET"] != value || got["PLAIN"] != "a" || len(got) != 2 {
		t.Fatalf("rendered %q, read back %q", b.String(), got)
	}
}
