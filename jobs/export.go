package jobs

// LoadChecked reads the job files of dir as a reload does: LoadDir, then
// the checks of the definitions together (AFTER and RESTART_WITH naming no
// job, cycles). It is for readers of a config dir without a daemon
// (overseer export): no job runs, so no last good version stands in for
// a rejected file.
func LoadChecked(dir string, environ []string) ([]*Job, []error, error) {
	defs, errs, err := LoadDir(dir, environ)
	if err != nil {
		return nil, nil, err
	}
	defs, errs = checkOrder(defs, errs, nil)
	return defs, errs, nil
}

// LookPath finds a program as a job's start does: name as it is when it
// holds a '/', else on the PATH of env (the last PATH= wins).
func LookPath(name string, env []string) (string, error) { return lookPath(name, env) }
