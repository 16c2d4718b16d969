package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"howett.net/plist"
)

// TestSystemdWord: each word of ExecStart reads back, by systemd's rules,
// as the argument it was: % doubled, $ doubled but in the program's path
// (which systemd does not expand), quoted when it holds blanks, quotes or
// backslashes.
func TestSystemdWord(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in       string
		expanded bool
		want     string
	}{
		{"/usr/bin/overseer", false, "/usr/bin/overseer"},
		{"-config-dir", true, "-config-dir"},
		{"/home/a b/conf", true, `"/home/a b/conf"`},
		{"/home/100%/conf", true, "/home/100%%/conf"},
		{"/home/$USER/conf", true, "/home/$$USER/conf"},
		{"/opt/$x/overseer", false, "/opt/$x/overseer"},
		{"/a b/%i $x", false, `"/a b/%%i $x"`},
		{`/say "hi"\`, true, `"/say \"hi\"\\"`},
		{"it's", true, `"it's"`},
		{"tab\there", true, `"tab\x09here"`},
		{";", true, `";"`},
		{"", true, `""`},
	} {
		if got := systemdWord(c.in, c.expanded); got != c.want {
			t.Errorf("systemdWord(%q, %v) = %s, want %s", c.in, c.expanded, got, c.want)
		}
	}
}

// TestSystemdVerify: systemd itself accepts the unit, as a user unit and
// as a system unit, with a program whose path holds a blank, % and $ (it
// says "not executable" when the quoting reads back as another path).
func TestSystemdVerify(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not verified by systemd here")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "a b%c$d")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, "overseer")
	if err := os.Symlink("/bin/true", exe); err != nil {
		t.Fatal(err)
	}
	args := []string{exe, "-d", "-config-dir", "/conf 100%", "-data-dir", "/data/$HOME", "-socket", `/s"q`, "-keep-runs", "5"}
	for _, c := range []struct{ user, wantedBy, mode string }{
		{"", "default.target", "--user"},
		{"alice", "multi-user.target", "--system"},
	} {
		unit := filepath.Join(dir, c.mode[2:], unitName)
		os.Mkdir(filepath.Dir(unit), 0o700)
		if err := os.WriteFile(unit, []byte(systemdUnit(args, c.user, c.wantedBy)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, c.mode, "verify", unit)
		// A user manager needs a runtime dir; none runs here.
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze %s verify: %v\n%s\nthe unit:\n%s", c.mode, err, out, systemdUnit(args, c.user, c.wantedBy))
		}
	}
}

// TestLaunchAgent: on macOS, install writes ~/Library/LaunchAgents/
// overseerd.plist, which parses back (with the plist library) into the
// program and its arguments, started at load and again when it fails.
func TestLaunchAgent(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	opts := options{configDir: "/Users/a b/conf", dataDir: "/Users/a b/data", socket: "/Users/a b/data/overseer.sock", daemonFlags: []string{"-cgroups", "off"}}
	svc, err := newService(serviceParams{goos: "darwin", uid: 501, home: home, exe: "/opt/over seer/overseer", opts: opts})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, "Library", "LaunchAgents", "overseerd.plist"); svc.path != want {
		t.Errorf("path %s, want %s", svc.path, want)
	}
	var got struct {
		Label             string
		ProgramArguments  []string
		RunAtLoad         bool
		KeepAlive         map[string]bool
		ExitTimeOut       int
		StandardErrorPath string
	}
	if _, err := plist.Unmarshal(svc.text, &got); err != nil {
		t.Fatalf("the plist does not parse: %v\n%s", err, svc.text)
	}
	wantArgs := []string{"/opt/over seer/overseer", "-d", "-config-dir", "/Users/a b/conf", "-data-dir", "/Users/a b/data", "-socket", "/Users/a b/data/overseer.sock", "-cgroups", "off"}
	if got.Label != "overseerd" || !reflect.DeepEqual(got.ProgramArguments, wantArgs) || !got.RunAtLoad ||
		!reflect.DeepEqual(got.KeepAlive, map[string]bool{"SuccessfulExit": false}) || got.ExitTimeOut != stopTimeout ||
		got.StandardErrorPath != "/Users/a b/data/overseerd.log" {
		t.Errorf("the plist reads back as %+v\n%s", got, svc.text)
	}
	want := [][]string{{"launchctl", "bootstrap", "gui/501", svc.path}}
	if !reflect.DeepEqual(svc.start, want) || !reflect.DeepEqual(svc.stop, [][]string{{"launchctl", "bootout", "gui/501/overseerd"}}) {
		t.Errorf("start %q, stop %q", svc.start, svc.stop)
	}
	if _, err := newService(serviceParams{goos: "darwin", uid: 0, home: home, exe: "/x", opts: opts}); err == nil {
		t.Error("a LaunchAgent for root: no error")
	}
}

// TestInstallSteps: install writes the user unit under $XDG_CONFIG_HOME,
// runs daemon-reload and enable --now in that order and says so;
// uninstall disables it, removes the file, reloads; a second uninstall
// finds nothing to do. The service manager's commands are recorded, not
// run: no systemd user instance runs here.
func TestInstallSteps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := options{configDir: "/c", dataDir: "/d", socket: filepath.Join(dir, "overseer.sock")}
	svc, err := newService(serviceParams{goos: "linux", uid: 1000, home: dir, xdgConfig: filepath.Join(dir, "xdg"), exe: "/bin/overseer", opts: opts})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "xdg", "systemd", "user", "overseerd.service"); svc.path != want {
		t.Fatalf("path %s, want %s", svc.path, want)
	}
	var ran []string
	record := func(argv []string) error {
		ran = append(ran, strings.Join(argv, " "))
		return nil
	}
	var out bytes.Buffer
	if err := svc.install(opts.socket, record, &out); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(svc.path); err != nil || !bytes.Equal(b, svc.text) {
		t.Errorf("the unit file: %v\n%s", err, b)
	}
	want := []string{"systemctl --user daemon-reload", "systemctl --user enable --now overseerd.service"}
	if !reflect.DeepEqual(ran, want) {
		t.Errorf("install ran %q, want %q", ran, want)
	}
	if !strings.HasPrefix(out.String(), "wrote "+svc.path+"\nran systemctl --user daemon-reload\nran systemctl --user enable --now overseerd.service\noverseerd runs now") {
		t.Errorf("install said:\n%s", out.String())
	}

	ran, out = nil, bytes.Buffer{}
	if err := svc.uninstall(record, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(svc.path); !os.IsNotExist(err) {
		t.Errorf("the unit file is still there: %v", err)
	}
	want = []string{"systemctl --user disable --now overseerd.service", "systemctl --user daemon-reload"}
	if !reflect.DeepEqual(ran, want) || out.String() != "ran "+want[0]+"\nremoved "+svc.path+"\nran "+want[1]+"\n" {
		t.Errorf("uninstall ran %q and said:\n%s", ran, out.String())
	}
	ran, out = nil, bytes.Buffer{}
	if err := svc.uninstall(record, &out); err != nil || ran != nil || !strings.HasPrefix(out.String(), "nothing to uninstall: ") {
		t.Errorf("a second uninstall: %v, ran %q, said %s", err, ran, out.String())
	}

	// While something answers on the socket, install refuses and writes nothing.
	l, err := net.Listen("unix", opts.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	err = svc.install(opts.socket, record, &out)
	if err == nil || !strings.Contains(err.Error(), "already serves") || !strings.Contains(err.Error(), "hint: overseer die") {
		t.Errorf("install with a daemon running: %v", err)
	}
	if _, err := os.Stat(svc.path); !os.IsNotExist(err) || ran != nil {
		t.Errorf("install with a daemon running wrote the file (%v) or ran %q", err, ran)
	}
}
