package main

import (
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/term"

	"overseer/internal/top"
)

// runTop runs overseer top (internal/top) on the terminal of stdin and
// stdout; without one it says so and exits 2. Colour as output.go decides
// it for a terminal: not with -no-color, NO_COLOR or TERM=dumb.
func runTop(opts options, c call, stdout, stderr io.Writer) int {
	if len(c.args.words) > 0 {
		fmt.Fprintf(stderr, "overseer: usage: overseer %s\n", syntax(c.v))
		return exitUsage
	}
	out, ok := stdout.(*os.File)
	if !ok || !term.IsTerminal(int(out.Fd())) || !term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprintf(stderr, "overseer top: needs a terminal\nhint: use overseer status or overseer events\n")
		return exitUsage
	}
	conn, err := dial(opts.socket)
	if err != nil {
		code := exitFailed
		if noDaemon(err) {
			code = exitNoDaemon
		}
		fmt.Fprintf(stderr, "overseer top: cannot reach overseerd at %s: %v\nhint: run overseer (no arguments) to start it\n", tilde(opts.socket), describeDialError(err))
		return code
	}
	conn.Close()
	if err := top.Run(func() (net.Conn, error) { return dial(opts.socket) }, topColor(opts), os.Stdin, out); err != nil {
		fmt.Fprintf(stderr, "overseer top: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// topColor says whether top colours states: as output.go decides it for a
// terminal, not with -no-color, NO_COLOR (https://no-color.org) or
// TERM=dumb.
func topColor(opts options) bool {
	return !opts.noColor && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}
