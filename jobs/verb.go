package jobs

// Verb is what a request or a reload did to a job: typed, so that the
// daemon renders it without parsing words back. String gives the word
// answers use.
type Verb int

// The verbs of outcomes and reload changes.
const (
	Unchanged Verb = iota // nothing changed
	Started
	Restarted
	Updated // a new definition handed to the running supervisor, no restart
	StoppedIt
	SkippedIt // its TEST said it should not run
	FailedIt  // it cannot be started, or gave up
	RejectedIt
	Signalled
	Warned // a reload's warning about a job file; the job loaded all the same
	Waited // not started: it waits for the jobs it starts after (Detail: "for db")
)

var verbWords = [...]string{
	Unchanged:  "unchanged",
	Started:    "started",
	Restarted:  "restarted",
	Updated:    "updated",
	StoppedIt:  "stopped",
	SkippedIt:  "skipped",
	FailedIt:   "failed",
	RejectedIt: "rejected",
	Signalled:  "signalled",
	Warned:     "warning",
	Waited:     "waiting",
}

func (v Verb) String() string { return verbWords[v] }
