package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// smallClientSource is the reference for overseer's status round trip:
// about the smallest Go client of the same socket round trip (dial, write
// STATUS, read to the end, exit). bench builds it once per run; what
// overseer's client takes beyond it is the client's own start and work.
const smallClientSource = `package main

import (
	"io"
	"net"
	"os"
)

func main() {
	c, err := net.Dial("unix", os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	if _, err := c.Write([]byte("STATUS\n")); err != nil {
		os.Exit(1)
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		os.Exit(1)
	}
}
`

var smallClient struct {
	once sync.Once
	path string
	err  error
}

// smallClientBinary builds the reference client (CGO_ENABLED=0, like
// overseer) and returns its path.
func smallClientBinary() (string, error) {
	smallClient.once.Do(func() {
		dir, err := os.MkdirTemp("", "overseer-bench-client-")
		if err != nil {
			smallClient.err = err
			return
		}
		src := map[string]string{"main.go": smallClientSource, "go.mod": "module smallclient\n\ngo 1.22\n"}
		for name, text := range src {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
				smallClient.err = err
				return
			}
		}
		bin := filepath.Join(dir, "smallclient")
		if err := os.Mkdir(filepath.Join(dir, "copy"), 0o700); err != nil {
			smallClient.err = err
			return
		}
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			smallClient.err = &buildError{err: fmt.Errorf("building the small Go client: %w", err), out: string(out)}
			return
		}
		smallClient.path, smallClient.err = copyBinary(bin, filepath.Join(dir, "copy"))
	})
	return smallClient.path, smallClient.err
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// socketer is a subject with a protocol socket (overseer).
type socketer interface {
	socketPath() string
}

func (o *overseerSubject) socketPath() string { return filepath.Join(o.dir, "data", "overseer.sock") }

// smallStatus runs the reference client once against sock: its time.
func smallStatus(bin, sock string) (time.Duration, error) {
	t0 := time.Now()
	out, err := exec.Command(bin, sock).CombinedOutput()
	if err != nil {
		return 0, &buildError{err: err, out: string(out)}
	}
	return time.Since(t0), nil
}

// rawStatus sends STATUS on the socket from bench itself, with no process
// started: the request alone.
func rawStatus(sock string) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.Dial("unix", sock)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Write([]byte("STATUS\n")); err != nil {
		return 0, err
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
