package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"overseer/jobs"
)

// The Nomad job export writes, in the JSON form of Nomad's API (what
// `nomad job run -json` reads, and `nomad job run -output` prints): the
// types below carry the names of github.com/hashicorp/nomad/api's fields,
// which export_test.go decodes them into; the binary does not import it.
// One job, nomadJobID; one task group per job file (its restart policy,
// its count from INSTANCES); in it the job's task, and its TEST as a
// prestart task that must succeed first.

// nomadJobID is the exported job's ID and name.
const nomadJobID = "overseer"

type nomadRequest struct {
	Job nomadJob
}

type nomadJob struct {
	ID, Name, Type string
	Datacenters    []string
	TaskGroups     []nomadGroup
}

type nomadGroup struct {
	Name             string
	Count            int
	RestartPolicy    nomadRestart
	ReschedulePolicy nomadReschedule
	Tasks            []nomadTask
	// Meta lists what does not carry over (key → why): the JSON form has
	// no comments.
	Meta map[string]string `json:",omitempty"`
}

type nomadRestart struct {
	Attempts        int
	Interval, Delay time.Duration
	Mode            string
}

type nomadReschedule struct {
	Attempts        int
	Interval, Delay time.Duration
	DelayFunction   string
	MaxDelay        time.Duration
	Unlimited       bool
}

type nomadTask struct {
	Name        string
	Driver      string
	User        string          `json:",omitempty"`
	Lifecycle   *nomadLifecycle `json:",omitempty"`
	Config      nomadConfig
	Env         map[string]string `json:",omitempty"`
	Templates   []nomadTemplate   `json:",omitempty"`
	Resources   *nomadResources   `json:",omitempty"`
	KillTimeout time.Duration
	KillSignal  string
}

type nomadLifecycle struct {
	Hook    string
	Sidecar bool
}

// nomadConfig is the driver's config: raw_exec's and exec's take these.
type nomadConfig struct {
	Command string   `json:"command"`
	Args    []string `json:"args"`
	WorkDir string   `json:"work_dir,omitempty"`
}

type nomadTemplate struct {
	EmbeddedTmpl, DestPath string
	Envvars                bool
}

type nomadResources struct {
	MemoryMB int
}

// exportNomad writes the Nomad job of files to stdout.
func exportNomad(files []exportFile, a exportArgs, stdout io.Writer, say func(string, ...any)) error {
	job := nomadJob{ID: nomadJobID, Name: nomadJobID, Type: "service", Datacenters: []string{"*"}}
	var leftOut []string
	for i := range files {
		f := &files[i]
		g := nomadJobGroup(f, a)
		if len(f.job.Env) > 0 && !a.secrets {
			leftOut = append(leftOut, fmt.Sprintf("%s: %s (%s)", f.file(), nomadVarPath(g.Name), strings.Join(envKeys(f.job), " ")))
		}
		job.TaskGroups = append(job.TaskGroups, g)
		sayNotes(*f, "nomad", "the group's Meta", say)
	}
	b, err := json.MarshalIndent(nomadRequest{Job: job}, "", "  ")
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
		return err
	}
	if len(leftOut) > 0 {
		say("environment values left out, since they may be secrets: each task reads them from a Nomad variable (a template of the task):\n  %s\n"+
			"hint: nomad var put PATH KEY=VALUE... for each; or overseer export nomad -include-secrets puts them in the job", strings.Join(leftOut, "\n  "))
	}
	return nil
}

// nomadVarPath is the Nomad variable a group's tasks read their
// environment from: one their workload identity may read.
func nomadVarPath(group string) string { return "nomad/jobs/" + nomadJobID + "/" + group }

// nomadJobGroup is the task group of f's job. What has no equivalent is
// added to f.notes and to the group's Meta.
func nomadJobGroup(f *exportFile, a exportArgs) nomadGroup {
	j := f.job
	note := func(key, why string) {
		if has(j, key) {
			f.notes = append(f.notes, key+": "+why)
		}
	}
	driver := "raw_exec"
	if a.exec {
		driver = "exec"
	}
	g := nomadGroup{Name: f.name(), Count: 1}
	if j.Index > 0 {
		g.Count = j.Instances
		f.notes = append(f.notes, "INSTANCES: the group's Count; an allocation's number is NOMAD_ALLOC_INDEX, from 0, not OVERSEER_INDEX")
	}
	// START_LIMIT starts within START_LIMIT_INTERVAL, RESTART_DELAY apart,
	// then failed: Nomad reschedules a failed allocation, its delay
	// doubling from RESTART_DELAY up to RESTART_MAX_DELAY.
	switch {
	case j.Restart == jobs.RestartNever:
		g.RestartPolicy = nomadRestart{Attempts: 0, Interval: time.Minute, Delay: j.RestartDelay, Mode: "fail"}
		g.ReschedulePolicy = nomadReschedule{Attempts: 0, Interval: 0, Delay: j.RestartDelay, DelayFunction: "constant", Unlimited: false}
	case j.StartLimit > 0:
		// Nomad refuses a policy whose attempts cannot fit in its interval.
		interval := max(j.StartLimitInterval, time.Duration(j.StartLimit)*j.RestartDelay)
		g.RestartPolicy = nomadRestart{Attempts: j.StartLimit, Interval: interval, Delay: j.RestartDelay, Mode: "fail"}
	default:
		// START_LIMIT=0, no limit: mode delay restarts on after the interval.
		g.RestartPolicy = nomadRestart{Attempts: 10, Interval: max(time.Minute, 10*j.RestartDelay), Delay: j.RestartDelay, Mode: "delay"}
	}
	if j.Restart != jobs.RestartNever {
		g.ReschedulePolicy = nomadReschedule{Delay: j.RestartDelay, DelayFunction: "exponential", MaxDelay: j.RestartMaxDelay, Unlimited: true}
	}
	if j.Restart == jobs.RestartOnFailure {
		f.notes = append(f.notes, "RESTART: on-failure: a Nomad service task is restarted after an exit 0 too")
	}

	task := func(name string, argv []string, key string) nomadTask {
		argv = f.program(argv, key)
		t := nomadTask{
			Name: name, Driver: driver, User: j.User,
			Config:      nomadConfig{Command: argv[0], Args: argv[1:], WorkDir: j.Dir},
			KillTimeout: j.StopTimeout, KillSignal: signalName(j.StopSignal),
		}
		if t.Config.Args == nil {
			t.Config.Args = []string{}
		}
		if slices.ContainsFunc(argv, func(w string) bool { return strings.Contains(w, "${") }) {
			f.notes = append(f.notes, key+": holds ${...}, which Nomad replaces by its own variables")
		}
		switch {
		case len(j.Env) == 0:
		case a.secrets:
			t.Env = make(map[string]string, len(j.Env))
			for _, kv := range j.Env {
				k, v, _ := strings.Cut(kv, "=")
				t.Env[k] = v
			}
		default:
			// Each value as a JSON string, which env = true's parser
			// (go-envparse) reads back whole: '#', quotes, line breaks.
			tmpl := `{{ with nomadVar "` + nomadVarPath(g.Name) + `" }}{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}` + "\n" + `{{ end }}{{ end }}`
			t.Templates = []nomadTemplate{{EmbeddedTmpl: tmpl, DestPath: "secrets/overseer.env", Envvars: true}}
		}
		if j.MemoryMax > 0 {
			t.Resources = &nomadResources{MemoryMB: int((j.MemoryMax + 1<<20 - 1) >> 20)}
		}
		return t
	}
	if j.Test != nil {
		t := task(g.Name+"-test", j.Test, "TEST")
		t.Lifecycle = &nomadLifecycle{Hook: "prestart", Sidecar: false}
		g.Tasks = append(g.Tasks, t)
		f.notes = append(f.notes, "TEST: a prestart task: one that fails fails the allocation, where overseer skips the job")
	}
	g.Tasks = append(g.Tasks, task(g.Name, j.Command, "COMMAND"))

	note("GROUP", "no equivalent: a task runs as USER with that user's groups")
	note("AFTER", "no equivalent: Nomad starts the groups of a job in no order")
	note("RESTART_WITH", "no equivalent: Nomad restarts each group on its own")
	note("READY", "no equivalent: a task is running once started (a service check can tell more)")
	note("READY_INTERVAL", "no equivalent")
	note("READY_TIMEOUT", "no equivalent")
	note("TEST_TIMEOUT", "no equivalent: the prestart task is not bounded")
	note("TEST_INTERVAL", "no equivalent: the prestart task runs once, before the task")
	note("START_SECS", "no equivalent: Nomad waits the restart delay after every exit")
	note("START_RETRIES", "no equivalent: the restart policy's attempts (START_LIMIT) count every start")
	note("RESTART_RESET", "no equivalent")
	note("METRICS_INTERVAL", "no equivalent: Nomad samples every task's resources itself")
	note("RESTART_ON_BINARY_CHANGE", "no equivalent")
	if j.MemoryMax > 0 && !a.exec {
		f.notes = append(f.notes, "MEMORY_MAX: the task's memory (MiB), which raw_exec may not enforce; exec does")
	}
	if len(f.notes) > 0 {
		g.Meta = make(map[string]string)
		for _, n := range f.notes {
			k, why, _ := strings.Cut(n, ": ")
			k = "overseer_not_carried_over_" + strings.ToLower(k)
			if g.Meta[k] != "" {
				why = g.Meta[k] + "; " + why
			}
			g.Meta[k] = why
		}
	}
	return g
}
