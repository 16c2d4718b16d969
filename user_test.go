package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestUserNeedsRoot runs overseer as nobody (uid 65534), which launches its
// daemon as nobody: a job file with USER is rejected, saying why, while the
// other jobs start. (testscripts/user_not_root.txtar shows the same when
// the suite does not run as root.)
func TestUserNeedsRoot(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root, to run overseer as nobody (uid 65534): not run as root; user_not_root.txtar covers this")
	}
	dir, b := nobodysDir(t)
	client := filepath.Join(dir, "overseer")
	config, data := filepath.Join(dir, "config"), filepath.Join(dir, "data")
	files := map[string]string{
		client:                           string(b),
		filepath.Join(config, "web.env"): "COMMAND=sleep 1000\nUSER=root\n",
		filepath.Join(config, "ok.env"):  "COMMAND=sleep 1000\n",
	}
	if err := os.Mkdir(config, 0o700); err != nil {
		t.Fatal(err)
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{dir, config, client, filepath.Join(config, "web.env"), filepath.Join(config, "ok.env")} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (string, int) {
		cmd := &exec.Cmd{
			Path:        client,
			Args:        append([]string{"overseer", "-config-dir", config, "-data-dir", data}, args...),
			Env:         []string{"HOME=" + dir, "PATH=/usr/bin:/bin"},
			Dir:         dir,
			SysProcAttr: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}},
		}
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	t.Cleanup(func() {
		if _, code := run("die"); code != 0 {
			killDaemon(data)
		}
	})

	out, code := run() // launches overseerd as nobody, then RELOAD
	if code != exitFailed {
		t.Errorf("overseer as nobody: exit %d, want %d (a rejected file)", code, exitFailed)
	}
	want := regexp.MustCompile(`(?m)^rejected web\.env:2: USER needs overseerd to run as root \(it runs as uid ` + strconv.Itoa(nobody) + `\): remove USER and GROUP to run the job as uid ` + strconv.Itoa(nobody) + `$`)
	if !want.MatchString(out) || !strings.Contains(out, "\nstarted ok\n") {
		t.Errorf("overseer as nobody answered:\n%s\nwant the line %s and started ok", out, want)
	}
}

// TestUntrustedDaemon: a process of another user listening on the socket
// path (it could, in a data dir others may write) is not taken for
// overseerd: the client refuses its answers.
func TestUntrustedDaemon(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root, to serve a socket as nobody (uid 65534): not run as root")
	}
	dir, b := nobodysDir(t)
	fake, socket := filepath.Join(dir, "testjob"), filepath.Join(dir, "overseer.sock")
	if err := os.WriteFile(fake, b, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, fake} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	cmd := &exec.Cmd{
		Path:        fake,
		Args:        []string{"testjob", "-serve", socket},
		SysProcAttr: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}},
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitUntil(t, "the fake daemon never listened", func() bool {
		_, err := sendLine(socket, "PING\n")
		return err == nil
	})

	var stdout, stderr strings.Builder
	code := run([]string{"overseer", "-data-dir", t.TempDir(), "-socket", socket, "die"}, &stdout, &stderr)
	if code != exitFailed || stdout.Len() != 0 {
		t.Errorf("overseer die: exit %d, stdout %q; want %d and nothing", code, stdout.String(), exitFailed)
	}
	want := "overseer: the process listening on " + socket + " runs as uid 65534, not as you (uid 0) or root: its answers are not trusted\n"
	if !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %q, want it to start with %q", stderr.String(), want)
	}
}

// nobody is the uid (and gid) tests run other users' processes as.
const nobody = 65534

// nobodysDir makes a dir for what nobody runs in a test (the test binary's
// dir and the test's temp dirs are root's and private), removed at the
// end, and returns it with the test binary's bytes, to copy in there.
func nobodysDir(t *testing.T) (dir string, bin []byte) {
	t.Helper()
	dir, err := os.MkdirTemp("", "overseer-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if bin, err = os.ReadFile(exe); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}
