package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"overseer/jobs"
)

// The client's command line (README.md, Commands): overseer's own flags,
// then a verb with its own flags, before or after its words, parsed the
// same way for every verb. The verbs are the protocol's (verbs, with
// their client fields) and the client's own (clientVerbs).

// clientVerbs are the client's own commands, beside the protocol's verbs:
// PLAN sends a RELOAD DRY; the others are answered without a daemon.
var clientVerbs = []verb{
	{name: "PLAN", synopsis: "", short: "what reload would do now, and why, touching nothing", flags: "v json",
		cli: planRequest},
	{name: "INSTALL", synopsis: "", short: "start overseerd at login (README, Start at login)", flags: "n user",
		local: true},
	{name: "UNINSTALL", synopsis: "", short: "no longer start overseerd at login: stop it, remove its file",
		local: true},
	{name: "TOP", synopsis: "", short: "a live full-screen view of every job: state, CPU, memory, log; keys act on them (README, Top)",
		local: true},
	{name: "COMPLETION", synopsis: "bash|zsh|fish", short: "a completion script for that shell (README, Completion)",
		local: true},
	{name: "EXPORT", synopsis: "systemd|nomad [NAME|GLOB...]", short: "the jobs as systemd units or a Nomad job (README, Outgrowing one machine)",
		flags: "user o include-secrets exec", local: true},
	{name: "PATH", synopsis: "[db|socket|logs|config]", short: "the path of the database, socket, logs dir or config dir this overseer uses (all four, labelled)",
		local: true},
}

// commandVerbs are the client's verbs in the order help lists them: the
// protocol's, PLAN after RELOAD, then the client's own.
func commandVerbs() []*verb {
	var vs []*verb
	for i := range verbs {
		vs = append(vs, &verbs[i])
		if verbs[i].name == "RELOAD" {
			vs = append(vs, &clientVerbs[0])
		}
	}
	for i := range clientVerbs[1:] {
		vs = append(vs, &clientVerbs[1+i])
	}
	return vs
}

// flagOwners returns the verbs (lower case, in help's order) that have a
// flag named name of their own.
func flagOwners(name string) []string {
	var owners []string
	for _, v := range commandVerbs() {
		if slices.Contains(strings.Fields(v.flags), name) {
			owners = append(owners, strings.ToLower(v.name))
		}
	}
	return owners
}

// findCommand returns the client's verb named word (any case), or nil.
func findCommand(word string) *verb {
	for _, v := range commandVerbs() {
		if strings.EqualFold(v.name, word) {
			return v
		}
	}
	return nil
}

// cliArgs are what a verb was given on the command line: its words and
// the values of its own flags (verb.flags says which it has).
type cliArgs struct {
	words   []string // the words that are not flags, before "--"
	command []string // SPAWN: the words after "--"
	dashes  bool     // there was a "--"
	json    bool     // -json
	follow  bool     // logs -f
	verbose bool     // reload, plan -v
	noWait  bool     // start, restart, reload -no-wait
	tied    bool     // spawn -tied
	dry     bool     // install -n
	n       int      // logs, history, inspect -n: how many (when nSet)
	nSet    bool
	stream  string     // logs -stream
	ttl     string     // spawn -ttl
	user    string     // install -user
	binary  string     // upgrade -binary
	export  exportArgs // export's flags
}

// call is what the command line asks of the client.
type call struct {
	v    *verb   // the verb as typed: the protocol's, or one of clientVerbs
	args cliArgs // what it was given
	// line is the request for the daemon, without the JSON word; r is it
	// parsed. None for a local verb (v.local).
	line string
	r    request
	// rest are the words after overseer's own flags: the daemon takes none.
	rest []string
}

// wire is the request line sent: line with the word JSON after its verb
// when -json asks for it (protocol.md, JSON).
func (c call) wire() string {
	if !c.args.json {
		return c.line
	}
	verb, rest, _ := strings.Cut(c.line, " ")
	return strings.TrimSuffix(verb+" JSON "+rest, " ")
}

// commandLine is the tree of ffcli commands of one run, and what parsing
// it found.
type commandLine struct {
	root   *ffcli.Command
	chosen *verb          // the verb typed; nil: none
	args   cliArgs        // its words and flags
	failed *ffcli.Command // the command whose flags were wrong, or asked for -h
}

// newCommandLine builds the command tree of prog: overseer's flags (into
// o, each also an OVERSEER_ variable) on its root; the verbs' subcommands
// come once the root's flags are parsed (parse), only the one typed.
func newCommandLine(prog string, o *options) *commandLine {
	cl := &commandLine{}
	cl.root = &ffcli.Command{
		Name:      prog,
		FlagSet:   newFlagSet(prog, o),
		Options:   []ff.Option{ff.WithEnvVarPrefix("OVERSEER")},
		UsageFunc: cl.note,
		Exec:      func(context.Context, []string) error { return nil },
	}
	return cl
}

// note is every command's UsageFunc. ffcli shows usage through it on -h
// and on every flag error: we only note which command it was, and say it
// ourselves, once.
func (cl *commandLine) note(c *ffcli.Command) string {
	cl.failed = c
	return ""
}

// parse parses args as ffcli would with one subcommand per verb, each with
// its own flags (into o for -tty and -no-color), overseerd with none; but
// only the typed verb's flag set is built: building all of them was ~5 %
// of a client's CPU at each start.
func (cl *commandLine) parse(prog string, o *options, args []string) error {
	if err := cl.root.Parse(args); err != nil {
		return err
	}
	rest := cl.root.FlagSet.Args()
	var v *verb
	if prog != "overseerd" && len(rest) > 0 {
		v = findCommand(rest[0])
	}
	if v == nil {
		return cl.root.Run(context.Background())
	}
	a := new(cliArgs)
	// Defining a flag stores its default: the verb's -tty and -no-color
	// would undo what overseer's own (and OVERSEER_TTY) set in o.
	kept := *o
	fs := verbFlagSet(prog, v, a, o)
	*o = kept
	sub := &ffcli.Command{
		Name:      strings.ToLower(v.name),
		FlagSet:   fs,
		UsageFunc: cl.note,
		Exec: func(context.Context, []string) error {
			// ffcli stops at the verb's first word, and drops a "--"
			// it stops at: parse the verb's words again from the start.
			if err := parseInterspersed(fs, rest[1:], a); err != nil {
				return err
			}
			cl.chosen, cl.args = v, *a
			return nil
		},
	}
	if err := sub.Parse(rest[1:]); err != nil {
		return err
	}
	return sub.Run(context.Background())
}

// verbFlagSet defines v's own flags into a (and, for a verb that asks the
// daemon, -tty and -no-color into o, as overseer's own flags do).
func verbFlagSet(prog string, v *verb, a *cliArgs, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+strings.ToLower(v.name), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, name := range strings.Fields(v.flags) {
		switch name {
		case "json":
			fs.BoolVar(&a.json, "json", false, "print the answer as JSON, an object a line (protocol.md, JSON), not text")
		case "f":
			fs.BoolVar(&a.follow, "f", false, "then follow new lines as they come, until Ctrl-C")
		case "n":
			switch v.name {
			case "INSTALL":
				fs.BoolVar(&a.dry, "n", false, "print the file install would write, and do nothing else")
			case "LOGS":
				fs.IntVar(&a.n, "n", defaultLogLines, "the last `N` lines")
			case "HISTORY":
				fs.IntVar(&a.n, "n", defaultHistory, "the last `N` runs")
			case "INSPECT":
				fs.IntVar(&a.n, "n", defaultSamples, "the last `N` resource samples")
			}
		case "stream":
			fs.StringVar(&a.stream, "stream", "", "only the lines of one stream, `stdout|stderr|test`")
		case "v":
			fs.BoolVar(&a.verbose, "v", false, "list unchanged jobs too")
		case "no-wait":
			fs.BoolVar(&a.noWait, "no-wait", false, "answer once the processes are started, not once they are ready (READY)")
		case "ttl":
			fs.StringVar(&a.ttl, "ttl", "", "stop and forget the job after this `DURATION` (90s, 1h)")
		case "tied":
			fs.BoolVar(&a.tied, "tied", false, "stop and forget the job once the shell or script that runs overseer spawn exits")
		case "binary":
			fs.StringVar(&a.binary, "binary", "", "the new overseer `PATH` (default: overseerd's own path, where go install or a package put the new one)")
		case "user":
			if v.name == "EXPORT" {
				fs.BoolVar(&a.export.user, "user", false, "systemd: user units, for systemctl --user (no User=, WantedBy=default.target)")
			} else {
				fs.StringVar(&a.user, "user", "", "as root: the system unit runs overseerd as this user `NAME` (User=)")
			}
		case "o":
			fs.StringVar(&a.export.out, "o", "", "systemd: write the units into `DIR`, each job's environment beside its unit (mode 0600), not to stdout")
		case "include-secrets":
			fs.BoolVar(&a.export.secrets, "include-secrets", false, "print the jobs' environment values (which may be secrets) in the units or the job")
		case "exec":
			fs.BoolVar(&a.export.exec, "exec", false, "nomad: the exec driver (isolated), not raw_exec")
		}
	}
	if !v.local || v.name == "TOP" {
		displayFlags(fs, o)
	}
	return fs
}

// parseInterspersed parses a verb's words, its flags before or after the
// others; "--" ends the flags: the words after it are SPAWN's command
// (another verb's words).
func parseInterspersed(fs *flag.FlagSet, args []string, a *cliArgs) error {
	if i := slices.Index(args, "--"); i >= 0 {
		args, a.command, a.dashes = args[:i], args[i+1:], true
	}
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		a.words = append(a.words, fs.Arg(0))
		args = fs.Args()[1:]
	}
	fs.Visit(func(f *flag.Flag) { a.nSet = a.nSet || f.Name == "n" })
	return nil
}

// parseCommandLine parses overseer's command line (after the program's
// name): its own flags and OVERSEER_ variables into the options, then the
// verb, its flags and its words into the request for the daemon. It
// reads no file and asks no daemon; parseFlags checks the options.
func parseCommandLine(prog string, args []string) (options, call, *commandLine, error) {
	var o options
	cl := newCommandLine(prog, &o)
	err := cl.parse(prog, &o, args)
	if err != nil {
		return o, call{}, cl, err
	}
	c := call{v: cl.chosen, args: cl.args, rest: cl.root.FlagSet.Args()}
	if o.daemon || prog == "overseerd" {
		return o, c, cl, nil
	}
	if c.v == nil {
		if len(c.rest) > 0 {
			return o, c, cl, clientUnknownVerb(c.rest[0], cl.root.FlagSet)
		}
		c.v = findVerb("RELOAD") // no verb: reload
	}
	if c.v.local {
		return o, c, cl, nil
	}
	a := c.args
	if p := findVerb(c.v.name); p != nil && p.parse == nil && len(a.words)+len(a.command) > 0 {
		return o, c, cl, fmt.Errorf("usage: overseer %s", syntax(c.v)) // DIE, PING
	}
	if !a.dashes || c.v.name != "SPAWN" {
		a.words = append(a.words, a.command...)
	}
	line := strings.Join(append([]string{c.v.name}, a.words...), " ")
	if c.v.cli != nil {
		line, err = c.v.cli(c.v, a)
	}
	if err == nil {
		c.line = line
		c.r, err = parseRequest(line)
	}
	if errors.Is(err, errUsage) {
		err = fmt.Errorf("usage: overseer %s", syntax(c.v))
	} else if err != nil {
		err = errors.New(lowerVerb(c.v.name, err.Error()))
	}
	return o, c, cl, err
}

// lowerVerb returns msg, an error the protocol words for verb (SIGNAL:
// unknown signal ...), with that leading verb as the client's command line
// writes it: signal: unknown signal ...
func lowerVerb(verb, msg string) string {
	rest, ok := strings.CutPrefix(msg, verb)
	if !ok || !strings.HasPrefix(rest, ":") && !strings.HasPrefix(rest, " ") {
		return msg
	}
	return strings.ToLower(verb) + rest
}

// clientUnknownVerb is the error for a word typed where a verb goes that
// is none: a flag of overseer's own without its dash (overseer version)
// is named, else the nearest verb, else where the verbs are listed.
func clientUnknownVerb(word string, root *flag.FlagSet) error {
	if f := root.Lookup(word); f != nil {
		return fmt.Errorf("unknown verb %q: did you mean -%s?", clip(word), f.Name)
	}
	err := unknownVerb(word, commandNames())
	if msg, ok := strings.CutSuffix(err.Error(), "HELP lists the verbs"); ok {
		return errors.New(msg + "overseer help lists them")
	}
	return err
}

// commandNames are the names of the client's verbs, upper case.
func commandNames() []string {
	var names []string
	for _, v := range commandVerbs() {
		names = append(names, v.name)
	}
	return names
}

// flagError is the message for a mistake in the flags of the verb cmd:
// the nearest flag it has, and where to read its flags.
func flagError(cmd *ffcli.Command, err error) error {
	if inner := errors.Unwrap(err); inner != nil && strings.HasPrefix(err.Error(), "error parsing commandline arguments") {
		err = inner // drop ff's words
	}
	if typed, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
		var names []string
		cmd.FlagSet.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if near := jobs.Nearest(strings.TrimPrefix(typed, "-"), names); near != "" {
			err = fmt.Errorf("%w: did you mean -%s?", err, near)
		}
	}
	return fmt.Errorf("%s: %w\nhint: overseer %s -h lists its flags", cmd.Name, err, cmd.Name)
}

// syntax is v's syntax after "overseer": its name, its own flags and its
// words: "logs [-f] [-n N] [-stream stdout|stderr|test] [-json] [NAME]".
func syntax(v *verb) string {
	fs := verbFlagSet("overseer", v, new(cliArgs), new(options))
	s := strings.ToLower(v.name)
	for _, name := range strings.Fields(v.flags) {
		f := fs.Lookup(name)
		arg, _ := flag.UnquoteUsage(f)
		if isBool(f) {
			s += " [-" + name + "]"
		} else {
			s += " [-" + name + " " + arg + "]"
		}
	}
	if v.synopsis != "" {
		s += " " + v.synopsis
	}
	return s
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// writeVerbs writes the list of the client's verbs for overseer -h: each
// one's syntax, then what it does, beside it or under it when long.
func writeVerbs(w io.Writer) {
	const col = 32
	for _, v := range commandVerbs() {
		s := syntax(v)
		if len(s) > col-4 {
			fmt.Fprintf(w, "  %s\n%*s%s\n", s, col, "", v.short)
		} else {
			fmt.Fprintf(w, "  %-*s%s\n", col-2, s, v.short)
		}
	}
}

// writeVerbUsage writes v's syntax and flags: overseer VERB -h, overseer
// help VERB.
func writeVerbUsage(w io.Writer, v *verb) {
	fmt.Fprintf(w, "usage: overseer [flags] %s\n%s\n", syntax(v), v.short)
	if v.globs {
		fmt.Fprintf(w, "A quoted glob ('web-*', '*') in place of NAME names each job it matches.\n")
	}
	fs := verbFlagSet("overseer", v, new(cliArgs), new(options))
	if fs.Lookup("tty") != nil || v.flags != "" {
		fmt.Fprintf(w, "\nflags, before or after its words (overseer -h: overseer's own, before the verb):\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// reloadRequest turns `overseer reload [-v]` into RELOAD [VERBOSE]; the
// protocol's own words (reload VERBOSE) go as they are.
func reloadRequest(v *verb, a cliArgs) (string, error) {
	words := append([]string{"RELOAD"}, a.words...)
	if a.verbose && !slices.ContainsFunc(a.words, func(w string) bool { return strings.EqualFold(w, "VERBOSE") }) {
		words = append(words, "VERBOSE")
	}
	if a.noWait && !slices.ContainsFunc(a.words, func(w string) bool { return strings.EqualFold(w, "NOWAIT") }) {
		words = append(words, "NOWAIT")
	}
	return strings.Join(words, " "), nil
}

// startRequest turns `overseer start|restart [-no-wait] NAME` into START
// NAME [NOWAIT] (RESTART ...).
func startRequest(v *verb, a cliArgs) (string, error) {
	words := append([]string{v.name}, a.words...)
	if a.noWait && !slices.ContainsFunc(a.words, func(w string) bool { return strings.EqualFold(w, "NOWAIT") }) {
		words = append(words, "NOWAIT")
	}
	return strings.Join(words, " "), nil
}

// readyMargin is how much longer than -timeout the client waits for a
// START, RESTART or RELOAD that waits for readiness: a job with the
// default READY_TIMEOUT (1m, as -timeout) gets its answer, ready or not,
// rather than the client's own "no answer".
const readyMargin = 15 * time.Second

// waitReady is the wait of the verbs that answer once their jobs are
// ready (NOWAIT: once started).
func waitReady(r request, timeout time.Duration) time.Duration {
	if r.nowait || r.dry {
		return timeout
	}
	return timeout + readyMargin
}

// planRequest turns `overseer plan [-v]` into RELOAD DRY [VERBOSE]: a
// RELOAD that says what it would do and does nothing.
func planRequest(v *verb, a cliArgs) (string, error) {
	if len(a.words) > 0 {
		return "", errUsage
	}
	if a.verbose {
		return "RELOAD DRY VERBOSE", nil
	}
	return "RELOAD DRY", nil
}

// logsRequest turns `overseer logs [-f] [-n N] [-stream STREAM] [NAME]`
// into the protocol line LOGS NAME [N] [STREAM] [FOLLOW]; no NAME is the
// glob *, every job. The protocol's own words after NAME (logs web 100
// stderr FOLLOW) count as those flags.
func logsRequest(v *verb, a cliArgs) (string, error) {
	name, n, stream, follow := "*", "", a.stream, a.follow
	if a.nSet {
		n = strconv.Itoa(a.n)
	}
	if stream != "" && !isLogStream(stream) {
		return "", fmt.Errorf("logs: -stream must be stdout, stderr or test, not %q", clip(stream))
	}
	if len(a.words) > 0 {
		name = a.words[0]
	}
	for _, w := range a.words[min(1, len(a.words)):] {
		switch {
		case strings.EqualFold(w, "FOLLOW"):
			follow = true
		case stream == "" && isLogStream(w):
			stream = w
		case n == "":
			n = w
		default:
			return "", errUsage
		}
	}
	line := "LOGS " + name
	for _, w := range []string{n, stream} {
		if w != "" {
			line += " " + w
		}
	}
	if follow {
		line += " FOLLOW"
	}
	return line, nil
}

func isLogStream(word string) bool {
	_, ok := logStream(word)
	return ok
}

// countRequest turns `overseer history [-n N] [NAME]` and `overseer
// inspect [-n N] NAME` into VERB [NAME] [N]; the protocol's own N after
// NAME (history web 5) goes as it is.
// upgradeRequest turns `overseer upgrade [-binary PATH]` into UPGRADE
// [BINARY], the path made absolute.
func upgradeRequest(v *verb, a cliArgs) (string, error) {
	if len(a.words) > 0 {
		return "", errUsage
	}
	if a.binary == "" {
		return v.name, nil
	}
	abs, err := filepath.Abs(a.binary)
	if err != nil {
		return "", err
	}
	return v.name + " " + abs, nil
}

func countRequest(v *verb, a cliArgs) (string, error) {
	words := a.words
	if a.nSet {
		if len(words) > 1 || v.name == "INSPECT" && len(words) == 0 {
			return "", errUsage
		}
		words = append(words, strconv.Itoa(a.n))
	}
	return strings.Join(append([]string{v.name}, words...), " "), nil
}

// spawnRequest turns `overseer spawn [-ttl D] [-tied] NAME -- COMMAND
// [ARG...]` into the protocol line SPAWN NAME [D] [TIED PARENT] --
// COMMAND..., the command's words quoted so that the daemon's split gives
// them back. -tied ties the job to our parent, the shell or script that
// runs `overseer spawn`: we exit as soon as the answer comes. Words after
// NAME (the protocol's own TTL, TIED) go as they are.
func spawnRequest(v *verb, a cliArgs) (string, error) {
	if len(a.words) == 0 || !a.dashes || len(a.command) == 0 {
		return "", errUsage
	}
	for _, c := range a.command {
		if strings.ContainsAny(c, "\r\n") {
			return "", errors.New("spawn: an argument of the command holds a line break, which a request line cannot carry")
		}
	}
	line := "SPAWN " + strings.Join(a.words, " ")
	if a.ttl != "" {
		line += " " + a.ttl
	}
	if a.tied {
		line += " TIED PARENT"
	}
	return line + " -- " + jobs.JoinCommand(a.command), nil
}
