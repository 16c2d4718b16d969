package jobs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestNameProblem(t *testing.T) {
	for _, c := range []struct {
		name, problem string
	}{
		{"web", ""},
		{"a.b_c-9", ""},
		{strings.Repeat("a", MaxNameLen), ""},
		{strings.Repeat("a", MaxNameLen+1), "it has 201 characters, over the limit of 200 (its log's files, NAME.log.N, must fit in a file name)"},
		{strings.Repeat("b", 251), "it has 251 characters, over the limit of 200 (its log's files, NAME.log.N, must fit in a file name)"},
		{"", "use only letters, digits, '_', '-' and '.'"},
		{".hidden", "use only letters, digits, '_', '-' and '.'"},
		{"a/b", "use only letters, digits, '_', '-' and '.'"},
		{strings.Repeat("é", 150), "use only letters, digits, '_', '-' and '.'"},
	} {
		if got := NameProblem(c.name); got != c.problem {
			t.Errorf("NameProblem(%.20q...) = %q, want %q", c.name, got, c.problem)
		}
	}
	// The longest file the daemon names after a job fits in NAME_MAX.
	if n := len(strings.Repeat("a", MaxNameLen) + ".log." + strconv.Itoa(MaxLogFiles)); n > 255 {
		t.Errorf("NAME.log.%d is %d bytes, over 255", MaxLogFiles, n)
	}
}

// FuzzLoadDirName: whatever a job file is named, LoadDir does not panic;
// it loads a file whose name is valid, and every file the daemon would
// name after it can be made; it rejects any other NAME.env with an error
// naming the file.
func FuzzLoadDirName(f *testing.F) {
	for _, seed := range []string{
		"web", "a.b_c-9", strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen+1),
		strings.Repeat("b", 251), "bad name", "x\nstarted forged", "\xff\xfe", "-", "a.env", "..", "é",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			t.Skip("not a file name")
		}
		dir := t.TempDir()
		file := name + ".env"
		if err := os.WriteFile(filepath.Join(dir, file), []byte("COMMAND=run\n"), 0o600); err != nil {
			t.Skipf("the system takes no such file name: %v", err)
		}
		jobs, errs, err := LoadDir(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(file, "."):
			if len(jobs)+len(errs) != 0 {
				t.Errorf("%q: a hidden file was read: %v %v", file, jobs, errs)
			}
		case ValidName(name):
			if len(errs) != 0 || len(jobs) != 1 || jobs[0].Name != name {
				t.Fatalf("%q: valid but not loaded: %v %v", file, jobs, errs)
			}
			for _, derived := range []string{name + ".log", name + ".log." + strconv.Itoa(MaxLogFiles)} {
				if err := os.WriteFile(filepath.Join(dir, derived), nil, 0o600); err != nil {
					t.Errorf("a loaded job's log file cannot be made: %v", err)
				}
			}
		default:
			var fe *FileError
			if len(jobs) != 0 || len(errs) != 1 || !errors.As(errs[0], &fe) || fe.File != file ||
				!strings.Contains(fe.Error(), "invalid job name: ") {
				t.Fatalf("%q: want one error naming the file, got %v %v", file, jobs, errs)
			}
		}
	})
}
