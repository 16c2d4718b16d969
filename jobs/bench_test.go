package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoadDir reads a config dir of 1000 job files, as a RELOAD does.
func BenchmarkLoadDir(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		text := fmt.Sprintf("COMMAND=server --port %d\nDIR=/tmp\nPATH=/opt/bin:${PATH}\nTOKEN=abc%d\n", 8000+i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("j%d.env", i)), []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	environ := os.Environ()
	b.ResetTimer()
	for b.Loop() {
		jobs, errs, err := LoadDir(dir, environ)
		if err != nil || len(errs) > 0 || len(jobs) != 1000 {
			b.Fatal(err, errs)
		}
	}
}
