package jobs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/shlex"
)

func TestParseSupervisionKeys(t *testing.T) {
	src := `COMMAND=run
STOP_SIGNAL=int
STOP_TIMEOUT=1m30s
TEST=check
TEST_TIMEOUT=2s
TEST_INTERVAL=5s
RESTART_DELAY=1s
RESTART_MAX_DELAY=10s
RESTART_RESET=5m
START_SECS=3s
START_RETRIES=0
START_LIMIT=3
START_LIMIT_INTERVAL=5m
MEMORY_MAX=512MiB
`
	j, err := Parse("web", strings.NewReader(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{j.StopSignal, j.StopTimeout, j.TestTimeout, j.TestInterval, j.RestartDelay, j.RestartMaxDelay, j.RestartReset, j.StartSecs, j.StartRetries,
		j.StartLimit, j.StartLimitInterval, j.MemoryMax, len(j.Env)}
	want := []any{syscall.SIGINT, 90 * time.Second, 2 * time.Second, 5 * time.Second, time.Second, 10 * time.Second, 5 * time.Minute, 3 * time.Second, 0,
		3, 5 * time.Minute, int64(512 << 20), 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, sig := range []string{"TERM", "SIGTERM", "hup", "QUIT", "USR1", "USR2", "KILL"} {
		if _, err := Parse("web", strings.NewReader("COMMAND=run\nSTOP_SIGNAL="+sig), nil); err != nil {
			t.Errorf("STOP_SIGNAL=%s: %v", sig, err)
		}
	}
}

func TestParse(t *testing.T) {
	src := `# a comment
export COMMAND="server --port 8080 'two words'"
TEST=test -f /etc/hostname
DIR=/tmp
RESTART=on-failure
TOKEN=s3cret
GREETING="hello ${TOKEN}"
`
	j, err := Parse("web", strings.NewReader(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Job{
		Name:       "web",
		Command:    []string{"server", "--port", "8080", "two words"},
		Test:       []string{"test", "-f", "/etc/hostname"},
		Dir:        "/tmp",
		Restart:    RestartOnFailure,
		Env:        []string{"GREETING=hello s3cret", "TOKEN=s3cret"},
		Hash:       j.Hash,
		KeyDigests: j.KeyDigests,
		// the defaults README.md documents
		StopSignal:      syscall.SIGTERM,
		StopTimeout:     10 * time.Second,
		TestTimeout:     10 * time.Second,
		RestartDelay:    500 * time.Millisecond,
		RestartMaxDelay: 30 * time.Second,
		RestartReset:    time.Minute,
		StartSecs:       time.Second,
		StartRetries:    5,
		ReadyInterval:   100 * time.Millisecond,
		ReadyTimeout:    time.Minute,

		StartLimit:         10,
		StartLimitInterval: time.Minute,

		RestartOnBinaryChange: true,
		Keys:                  []string{"COMMAND", "DIR", "GREETING", "RESTART", "TEST", "TOKEN"},
	}
	if !reflect.DeepEqual(j, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", j, want)
	}
	// KeyDigests names every key with a digest, never a value.
	if !regexp.MustCompile(`^\{"COMMAND":"[0-9a-f]{8}","DIR":"[0-9a-f]{8}","GREETING":"[0-9a-f]{8}","RESTART":"[0-9a-f]{8}","TEST":"[0-9a-f]{8}","TOKEN":"[0-9a-f]{8}"\}$`).MatchString(j.KeyDigests) {
		t.Errorf("KeyDigests = %s", j.KeyDigests)
	}
}

func TestParseExpandsDaemonEnvironment(t *testing.T) {
	src := "COMMAND=run\nPATH=/opt/bin:${PATH}\nHERE=${HOME}/x\nODD=${QUOTED}\n"
	env := []string{"PATH=/usr/bin:/bin", "HOME=/home/me", "QUOTED=it's", "UNUSED=1"}
	j, err := Parse("web", strings.NewReader(src), env)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"HERE=/home/me/x", "ODD=", "PATH=/opt/bin:/usr/bin:/bin"}
	if !reflect.DeepEqual(j.Env, want) {
		t.Errorf("Env = %q, want %q (daemon variables the file does not set stay out)", j.Env, want)
	}
}

// TestParseSize: MEMORY_MAX reads sizes as -log-max-size does.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "16MiB": 16 << 20, "16M": 16 << 20, "16MB": 16 << 20, "512KiB": 512 << 10,
		"2K": 2 << 10, "1GiB": 1 << 30, "3G": 3 << 30} {
		j, err := Parse("web", strings.NewReader("COMMAND=run\nMEMORY_MAX="+in+"\n"), nil)
		if err != nil || j.MemoryMax != want {
			t.Errorf("MEMORY_MAX=%s: %v %v, want %d", in, j, err, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 1000: "1000", 16 << 20: "16MiB", 1536 << 10: "1536KiB", 2 << 30: "2GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestParseShell(t *testing.T) {
	src := "COMMAND=a 'b | c' > /dev/null\nTEST='test -d x || exit 3'\nSHELL=bash\n"
	j, err := Parse("web", strings.NewReader(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{j.Shell, j.Command, j.Test, j.Env}
	want := []any{"bash", []string{"bash", "-c", "a 'b | c' > /dev/null"}, []string{"bash", "-c", "test -d x || exit 3"}, []string{"SHELL=bash"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// An unterminated shell quote is the shell's business, not a parse error.
	if _, err := Parse("web", strings.NewReader("SHELL=/bin/sh\nCOMMAND=echo \"'\"\n"), nil); err != nil {
		t.Errorf("with SHELL, COMMAND is not split: %v", err)
	}
	other, _ := Parse("web", strings.NewReader(strings.Replace(src, "SHELL=bash", "SHELL=/bin/bash", 1)), nil)
	if other.Hash == j.Hash {
		t.Error("another SHELL kept the hash")
	}
}

func TestParseHash(t *testing.T) {
	a, _ := Parse("web", strings.NewReader("COMMAND=run a\nX=1\n"), nil)
	b, _ := Parse("web", strings.NewReader("# reformatted\nX='1'\n\nexport COMMAND=\"run a\"\n"), nil)
	c, _ := Parse("web", strings.NewReader("COMMAND=run a\nX=2\n"), nil)
	if a.Hash != b.Hash {
		t.Errorf("formatting changed the hash: %s != %s", a.Hash, b.Hash)
	}
	if a.Hash == c.Hash {
		t.Errorf("a changed value kept the hash %s", a.Hash)
	}
}

func TestParseErrors(t *testing.T) {
	const secret = "hunter2"
	for _, tc := range []struct{ name, src, want string }{
		{"web", "X=1\n", "web.env: COMMAND is missing"},
		{"web", "COMMAND=\n", "web.env:1: COMMAND: is empty"},
		{"web", "X=1\nCOMMAND=run 'hunter2\n", "web.env:2: COMMAND: EOF found when expecting closing quote"},
		{"web", "COMMAND=run\nTEST='a \"b'\n", "web.env:2: TEST: EOF found when expecting closing quote"},
		{"web", "X=1\nCOMMAND=printf \"[%s]\\n\" \"hunter2\\tb\"\n", "web.env:2: COMMAND: has a backslash inside double quotes before a character other than $ ` \" \\, which sh keeps and overseer drops: use single quotes, or a shell"},
		{"web", "COMMAND=run\n\nTEST='grep \"hunter2\\.b\" f'\n", "web.env:3: TEST: has a backslash inside double quotes"},
		{"web", "X=1\nCOMMAND=\"run\\nhunter2\"\n", "web.env:2: COMMAND: has a line break between words"},
		{"web", "COMMAND='run\nhunter2'\n", "web.env:1: COMMAND: has a line break between words"},
		{"web", "COMMAND=\"run\\rhunter2\"\n", "web.env:1: COMMAND: has a carriage return outside quotes"},
		{"web", "COMMAND=run $'hunter2'\n", "web.env:1: COMMAND: has $'...'"},
		{"web", "COMMAND='run hunter2\xff'\n", "web.env:1: COMMAND: holds bytes that are not UTF-8"},
		{"web", "COMMAND=run\n\nPASSWORD='hunter2\n", "web.env:3: unterminated quoted value: add the closing quote"},
		{"web", "COMMAND=run\nhunter2 oops\n", "web.env:2: invalid key name"},
		{"web", "COMMAND=run\n=hunter2\n", "web.env:2: expected KEY=value"},
		{"web", "COMMAND=run\nhunter2 x=1\n", "web.env: a key has a space"},
		{"web", "COMMAND=run\x00hunter2\n", "web.env:1: a NUL byte"},
		{"web", "COMMAND=run\nTEST=t\nTEST_INTERVAL=1ns\n", "web.env:3: TEST_INTERVAL must be at least 100ms"},
		{"web", bomb(40), "web.env:"},
		{"web", "COMMAND=run\nRESTART=sometimes\n", "web.env:2: RESTART must be always, on-failure or never"},
		{"web", "COMMAND=run\nDIR=relative/hunter2\n", "web.env:2: DIR must be an absolute path"},
		{"web", "COMMAND=run\nSTOP_SIGNAL=hunter2\n", "web.env:2: STOP_SIGNAL must be a signal name such as TERM"},
		{"web", "COMMAND=run\nRESTART_ON_BINARY_CHANGE=maybe\n", "web.env:2: RESTART_ON_BINARY_CHANGE must be yes or no"},
		{"web", "COMMAND=run\nSTOP_TIMEOUT=hunter2\n", "web.env:2: STOP_TIMEOUT must be a duration such as 500ms"},
		{"web", "COMMAND=run\nSTOP_TIMEOUT=-1s\n", "web.env:2: STOP_TIMEOUT must be a duration"},
		{"web", "COMMAND=run\nTEST_INTERVAL=1s\n", "web.env:2: TEST_INTERVAL needs a TEST"},
		{"web", "COMMAND=run\nMETRICS_INTERVAL=hunter2\n", "web.env:2: METRICS_INTERVAL must be a duration of at least 1s"},
		{"web", "COMMAND=run\n\nMETRICS_INTERVAL=500ms\n", "web.env:3: METRICS_INTERVAL must be at least 1s, or 0 for no sampling"},
		{"web", "COMMAND=run\nSTART_RETRIES=hunter2\n", "web.env:2: START_RETRIES must be a whole number"},
		{"web", "COMMAND=run\nSTART_LIMIT=hunter2\n", "web.env:2: START_LIMIT must be a whole number, 0 for no limit"},
		{"web", "COMMAND=run\nSTART_LIMIT=-1\n", "web.env:2: START_LIMIT must be a whole number, 0 for no limit"},
		{"web", "COMMAND=run\nSTART_LIMIT_INTERVAL=hunter2\n", "web.env:2: START_LIMIT_INTERVAL must be a duration such as 500ms"},
		{"web", "COMMAND=run\nSTART_LIMIT=3\nSTART_LIMIT_INTERVAL=-1s\n", "web.env:3: START_LIMIT_INTERVAL must be a duration such as 500ms"},
		{"web", "COMMAND=run\n\nSTART_LIMIT_INTERVAL=1m\n", "web.env:3: START_LIMIT_INTERVAL needs START_LIMIT: set how many starts it allows, more than 0"},
		{"web", "COMMAND=run\nSTART_LIMIT=0\nSTART_LIMIT_INTERVAL=1m\n", "web.env:3: START_LIMIT_INTERVAL needs START_LIMIT"},
		{"web", "COMMAND=run\nSTART_LIMIT=3\nSTART_LIMIT_INTERVAL=0\n", "web.env:3: START_LIMIT_INTERVAL must be more than 0"},
		{"web", "COMMAND=run\nMEMORY_MAX=hunter2\n", "web.env:2: MEMORY_MAX must be a size such as 512MiB, 2GiB or 1048576 (bytes), 0 for no limit"},
		{"web", "COMMAND=run\nMEMORY_MAX=-5MiB\n", "web.env:2: MEMORY_MAX must be a size"},
		{"web", "COMMAND=run\nMEMORY_MAX=512MB hunter2\n", "web.env:2: MEMORY_MAX must be a size"},
		{"web", "COMMAND=run\nMEMORY_MAX=99999999999G\n", "web.env:2: MEMORY_MAX must be a size"},
		{"web", "COMMAND=run\nSHELL=hunter2/sh\n", "web.env:2: SHELL must be an absolute path or a program name looked up on PATH"},
		{"web", "COMMAND=run\nSHELL=\"/bin/hunter2 -e\"\n", "web.env:2: SHELL must be one program, without arguments"},
		{"web", "COMMAND=run\nSHELL=\n", "web.env:2: SHELL is empty"},
		{"web", "SHELL=/bin/sh\nCOMMAND=' '\n", "web.env:2: COMMAND: is empty"},
		{"web", "SHELL=/bin/sh\nCOMMAND=run\nTEST=\n", "web.env:3: TEST: is empty"},
		{"web", "COMMAND=run\nGROUP=hunter2\n", "web.env:2: GROUP needs USER"},
		{"web", "COMMAND=run\nUSER=\n", "web.env:2: USER must be a name or a numeric id"},
		{"web", "COMMAND=run\nUSER=a\nGROUP='hunter2 x'\n", "web.env:3: GROUP must be a name or a numeric id"},
		{"my job", "COMMAND=run\n", "my job.env: invalid job name"},
		{"web", strings.Repeat("#", MaxFileSize+1), "web.env: larger than"},
	} {
		_, err := Parse(tc.name, strings.NewReader(tc.src), nil)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error %q", tc.src, tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%.40q) error\n got %q\nwant prefix %q", tc.src, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows a value from the file", err)
		}
	}
}

// bomb is a small file whose ${VAR} expansion doubles n times.
func bomb(n int) string {
	var b strings.Builder
	b.WriteString("COMMAND=run\nV0=xxxxxxxx\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "V%d=${V%d}${V%d}\n", i, i-1, i-1)
	}
	return b.String()
}

func TestParseBOM(t *testing.T) {
	if _, err := Parse("web", strings.NewReader("\xef\xbb\xbfCOMMAND=run\n"), nil); err != nil {
		t.Errorf("a file with a byte order mark: %v", err)
	}
	if _, err := Parse("web", strings.NewReader(bomb(10)), nil); err != nil {
		t.Errorf("a modest expansion is refused: %v", err)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"b.env":                 "COMMAND=run b\n",
		"a.env":                 "COMMAND=run a\n",
		"broken.env":            "X=1\n",
		"nodir.env":             "COMMAND=run\nDIR=/does/not/exist\n",
		".hidden.env":           "COMMAND=run\n",
		"a.env~":                "COMMAND=run\n",
		"README":                "not a job",
		"web.env.swp":           "x",
		"bad name.env":          "COMMAND=run\n",
		"x\nstarted forged.env": "COMMAND=run\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.env"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a.env"), filepath.Join(dir, "link.env")); err != nil {
		t.Fatal(err)
	}
	jobs, errs, err := LoadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	if want := []string{"a", "b", "link"}; !reflect.DeepEqual(names, want) {
		t.Errorf("jobs = %q, want %q", names, want)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		"bad name.env: invalid job name: use only letters, digits, '_', '-' and '.'",
		"broken.env: COMMAND is missing",
		"nodir.env:2: DIR is not an existing directory",
		"sub.env: not a regular file",
		`"x\nstarted forged.env": invalid job name: use only letters, digits, '_', '-' and '.'`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
}

// TestFileErrorName: a file name that would not print as it is (a line
// break, an escape, bytes that are not UTF-8) is quoted.
func TestFileErrorName(t *testing.T) {
	for file, want := range map[string]string{
		"web.env":      "web.env:2: bad",
		"bad name.env": "bad name.env:2: bad",
		"a\nb.env":     `"a\nb.env":2: bad`,
		"e\x1b[1m.env": `"e\x1b[1m.env":2: bad`,
		"c\xffd.env":   `"c\xffd.env":2: bad`,
		"é.env":        "é.env:2: bad",
	} {
		if got := (&FileError{File: file, Line: 2, Err: errors.New("bad")}).Error(); got != want {
			t.Errorf("FileError{File: %q}.Error() = %q, want %q", file, got, want)
		}
	}
}

// FuzzParse: no job file panics the parser; an error is a *FileError on
// one line; what parses has a command and an identity.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"COMMAND=run\n", "export COMMAND=\"a b\" # c\nX='1'\n", "COMMAND=run\nTEST='x\n",
		"COMMAND=run\nRESTART=never\nSTOP_SIGNAL=INT\nSTOP_TIMEOUT=1s\n", "=x\n", "COMMAND: run\n",
		"COMMAND=run\nP=${HOME}/x:$PATH\n", "\xff\xfe\x00", "COMMAND=\"a\\\"b\"\n", "COMMAND=run\nTEST_INTERVAL=1s\nTEST=t\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		j, err := Parse("web", strings.NewReader(src), []string{"HOME=/home/me", "PATH=/bin"})
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a *FileError", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error %q spans lines", err)
			}
			return
		}
		if len(j.Command) == 0 || j.Hash == "" {
			t.Errorf("parsed without a command or hash: %+v", j)
		}
	})
}

func TestJoinCommandRoundTrip(t *testing.T) {
	for _, argv := range [][]string{
		{"server", "--port", "8080"},
		{"sh", "-c", "echo 'a b'; exit 3"},
		{"it's", "", "a\\b", "$HOME", "a\tb", "x\x1by"},
	} {
		back, err := SplitCommand(JoinCommand(argv))
		if err != nil || !reflect.DeepEqual(back, argv) {
			t.Errorf("JoinCommand(%q) = %q, splits back to %q (%v)", argv, JoinCommand(argv), back, err)
		}
	}
}

// TestShellJoin checks the form answers show, and that bash reads it back.
func TestShellJoin(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"server", "--port", "8080"}, "server --port 8080"},
		{[]string{"it's", "", "a b"}, `'it'\''s' '' 'a b'`},
		{[]string{"printf", `a\nb`}, `printf 'a\nb'`},
		{[]string{"echo", "a\nb"}, `echo $'a\nb'`},
		{[]string{"a\rb\tc"}, `$'a\rb\tc'`},
		{[]string{"it's\n\\"}, `$'it\'s\n\\'`},
		{[]string{"\x00\x1b\x7f"}, `$'\x00\x1b\x7f'`},
		{[]string{"\xff\xfe", "é\n"}, `$'\xff\xfe' $'é\n'`},
	} {
		got := ShellJoin(tc.argv)
		if got != tc.want {
			t.Errorf("ShellJoin(%q) = %q, want %q", tc.argv, got, tc.want)
		}
		if strings.ContainsAny(got, "\n\r") {
			t.Errorf("ShellJoin(%q) = %q spans lines", tc.argv, got)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to read ShellJoin's $'...' back")
	}
	argv := []string{"a\nb", "it's", "\t\x1b\x7f\\", "\xff", "é", ""}
	out, err := exec.Command(bash, "-c", `printf '<%s>' `+ShellJoin(argv)).Output()
	want := "<" + strings.Join(argv, "><") + ">"
	if err != nil || string(out) != want {
		t.Errorf("bash read %q back as %q (%v), want %q", ShellJoin(argv), out, err, want)
	}
}

// TestShDifference: what shlex and POSIX sh split alike is accepted, the
// rest refused; where sh is at hand, it confirms each verdict.
func TestShDifference(t *testing.T) {
	for _, tc := range []struct {
		s      string
		differ string // a part of the error, "" when both split alike
		sh     bool   // /bin/sh can confirm (no $'...', one command)
	}{
		{`printf '[%s]\n' 'a\tb'`, "", true},
		{`a "b c" 'd e' f\ g`, "", true},
		{`"a\"b" "a\\b" "\$x" "a\` + "`" + `b"`, "", true},
		{`a\tb \n`, "", true}, // outside quotes a backslash escapes anything, in both
		{`a#b '#c' "d"#e`, "", true},
		{"a b # a comment", "", true},
		{"a b # a comment\n", "", true},
		{"\n\na b\n\n", "", false},           // sh: empty lines around one command
		{"a 'b\nc' \"d\ne\"", "", true},      // a line break inside quotes is literal
		{`a $b ${c} |;&<>()*?[~`, "", false}, // literal to shlex: README says so
		{`printf "[%s]\n" "a\tb"`, "backslash inside double quotes", true},
		{`"a\.b"`, "backslash inside double quotes", true},
		{`"\'"`, "backslash inside double quotes", true},
		{"a \"b\\\nc\"", "backslash before a line break inside double quotes", true},
		{"a\\\nb", "backslash before a line break", true},
		{"a\nb", "line break between words", false},
		{"a # c\nb", "line break between words", false},
		{"a\rb", "carriage return", true},
		{"a \r", "carriage return", true},
		{`a $'b\tc'`, "ANSI-C quoting", false},
		{`a $"b c"`, `$"..."`, false},
		{`a b$""`, `$"..."`, false},
		{`a "b$" "$"'c'`, "", true}, // a $ inside double quotes, before the closing one
		{"a \xff", "not UTF-8", true},
		{"a '\xffb'", "not UTF-8", true},
	} {
		err := shDifference(tc.s)
		switch {
		case tc.differ == "" && err != nil:
			t.Errorf("shDifference(%q) = %v, want nil", tc.s, err)
		case tc.differ != "" && (err == nil || !strings.Contains(err.Error(), tc.differ)):
			t.Errorf("shDifference(%q) = %v, want %q", tc.s, err, tc.differ)
		}
		if !tc.sh {
			continue
		}
		words, err := shlex.Split(tc.s)
		if err != nil {
			t.Fatalf("shlex.Split(%q): %v", tc.s, err)
		}
		out, err := exec.Command("/bin/sh", "-c", "printf '<%s>' "+tc.s).Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		same := string(out) == "<"+strings.Join(words, "><")+">"
		if len(words) == 0 {
			same = len(out) == 2 // printf '<%s>' with no arguments
		}
		if same != (tc.differ == "") {
			t.Errorf("%q: sh gives %q, shlex %q: same %v, want %v", tc.s, out, words, same, tc.differ == "")
		}
	}
}

// TestShDifferenceBash: bash (sh on macOS and many Linux systems) reads
// $'...' and $"..." otherwise than shlex; dash has no such quotes.
func TestShDifferenceBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to confirm $'...' and $\"...\"")
	}
	for _, s := range []string{`a $'b\tc'`, `a $"b c"`, `a b$""`} {
		words, err := shlex.Split(s)
		if err != nil {
			t.Fatalf("shlex.Split(%q): %v", s, err)
		}
		out, err := exec.Command(bash, "-c", "printf '<%s>' "+s).Output()
		if err != nil {
			t.Fatalf("bash: %v", err)
		}
		if string(out) == "<"+strings.Join(words, "><")+">" {
			t.Errorf("%q: bash and shlex both give %q", s, out)
		}
		if shDifference(s) == nil {
			t.Errorf("shDifference(%q) = nil: bash gives %q, shlex %q", s, out, words)
		}
	}
}

func TestCheckIdentity(t *testing.T) {
	j, err := Parse("web", strings.NewReader("COMMAND=run\nUSER=root\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.User != "root" || len(j.Env) != 0 {
		t.Errorf("USER=root: User %q, Env %q", j.User, j.Env)
	}
	want := "USER needs overseerd to run as root (it runs as uid 1000): remove USER and GROUP to run the job as uid 1000"
	if err := checkIdentity(j, 1000); err == nil || err.Error() != want {
		t.Errorf("checkIdentity as uid 1000: %v, want %q", err, want)
	}
	if err := checkIdentity(j, 0); err != nil {
		t.Errorf("checkIdentity as root: %v", err)
	}
	id, err := lookupIdentity("0", "0")
	if err != nil {
		t.Fatal(err)
	}
	if id.cred.Uid != 0 || id.cred.Gid != 0 || id.name != "root" || len(id.cred.Groups) == 0 {
		t.Errorf("lookupIdentity(0, 0) = %+v, %+v", id, id.cred)
	}
	for _, tc := range []struct{ user, group, want string }{
		{"no-such-user-hunter2", "", "USER: no such user on this system"},
		{"root", "no-such-group-hunter2", "GROUP: no such group on this system"},
		{"4000000000", "", "USER: no such user on this system"},
	} {
		_, err := lookupIdentity(tc.user, tc.group)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("lookupIdentity(%q, %q): %v, want %q", tc.user, tc.group, err, tc.want)
		}
	}
}

func TestParseMetricsInterval(t *testing.T) {
	for _, tc := range []struct {
		src string
		set bool
		d   time.Duration
	}{
		{"COMMAND=run\n", false, 0},
		{"COMMAND=run\nMETRICS_INTERVAL=0\n", true, 0},
		{"COMMAND=run\nMETRICS_INTERVAL=1s\n", true, time.Second},
		{"COMMAND=run\nMETRICS_INTERVAL=1m\n", true, time.Minute},
	} {
		j, err := Parse("web", strings.NewReader(tc.src), nil)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if j.MetricsIntervalSet != tc.set || j.MetricsInterval != tc.d {
			t.Errorf("%q: MetricsInterval %v (set %v), want %v (set %v)", tc.src, j.MetricsInterval, j.MetricsIntervalSet, tc.d, tc.set)
		}
		for _, kv := range j.Env {
			if strings.HasPrefix(kv, "METRICS_INTERVAL=") {
				t.Errorf("%q: METRICS_INTERVAL is in the job's environment", tc.src)
			}
		}
	}
}

func TestParseReady(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want func(*Job) bool
	}{
		{"READY=curl -f http://localhost:8080/", func(j *Job) bool {
			return slices.Equal(j.ReadyCommand, []string{"curl", "-f", "http://localhost:8080/"}) && j.ReadyInterval == 100*time.Millisecond && j.ReadyTimeout == time.Minute
		}},
		{"SHELL=/bin/sh\nREADY=test -e /run/x && true", func(j *Job) bool {
			return slices.Equal(j.ReadyCommand, []string{"/bin/sh", "-c", "test -e /run/x && true"})
		}},
		{"READY=fd:3\nREADY_TIMEOUT=5s", func(j *Job) bool { return j.ReadyFd == 3 && j.ReadyCommand == nil && j.ReadyTimeout == 5*time.Second }},
		{"READY=fd:1023", func(j *Job) bool { return j.ReadyFd == 1023 }},
		{"READY=check\nREADY_INTERVAL=2s", func(j *Job) bool { return j.ReadyInterval == 2*time.Second }},
		{"READY=notify-send ready", func(j *Job) bool { return j.ReadyCommand[0] == "notify-send" }},
	} {
		j, err := Parse("web", strings.NewReader("COMMAND=run\n"+tc.src), nil)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if !tc.want(j) || !j.HasReady() {
			t.Errorf("%q: got %+v", tc.src, j)
		}
	}
	j, err := Parse("web", strings.NewReader("COMMAND=run\nREADY=notify"), nil)
	switch {
	case notifySupported && (err != nil || !j.ReadyNotify):
		t.Errorf("READY=notify: %v", err)
	case !notifySupported && (err == nil || err.Error() != "web.env:2: READY: notify (sd_notify) is supported on Linux only: use READY=fd:N or a READY command"):
		t.Errorf("READY=notify off Linux: %v", err)
	}
	if j, _ := Parse("web", strings.NewReader("COMMAND=run"), nil); j.HasReady() {
		t.Errorf("no READY: HasReady")
	}
	for _, tc := range []struct{ src, err string }{
		{"READY=fd:2", "web.env:2: READY: fd:N needs a descriptor number N from 3 to 1023 (0, 1 and 2 are stdin, stdout and stderr)"},
		{"READY=fd:x", "web.env:2: READY: fd:N needs a descriptor number N from 3 to 1023 (0, 1 and 2 are stdin, stdout and stderr)"},
		{"READY=fd:1024", "web.env:2: READY: fd:N needs a descriptor number N from 3 to 1023 (0, 1 and 2 are stdin, stdout and stderr)"},
		{"READY=fd3", "web.env:2: READY: use fd:N, notify, or a command"},
		{"READY=notify:1", "web.env:2: READY: use fd:N, notify, or a command"},
		{"READY=", "web.env:2: READY: is empty"},
		{`READY="a 'b"`, "web.env:2: READY: EOF found when expecting closing quote"},
		{"READY_TIMEOUT=5s", "web.env:2: READY_TIMEOUT needs a READY"},
		{"READY_INTERVAL=5s", "web.env:2: READY_INTERVAL needs a READY"},
		{"READY=fd:3\nREADY_INTERVAL=1s", "web.env:3: READY_INTERVAL applies only to a READY command, not to READY=fd:N or READY=notify"},
		{"READY=x\nREADY_TIMEOUT=0s", "web.env:3: READY_TIMEOUT must be more than 0"},
		{"READY=x\nREADY_INTERVAL=0s", "web.env:3: READY_INTERVAL must be more than 0"},
		{"READY=x\nREADY_TIMEOUT=soon", "web.env:3: READY_TIMEOUT must be a duration such as 500ms, 10s or 1m30s"},
	} {
		_, err := Parse("web", strings.NewReader("COMMAND=run\n"+tc.src), nil)
		if err == nil || err.Error() != tc.err {
			t.Errorf("%q: got %v, want %s", tc.src, err, tc.err)
		}
	}
}
