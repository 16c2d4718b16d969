package jobs

import (
	"os"
	"syscall"
)

// statKey is what says a file is as it was: its inode, size and times.
func statKey(fi os.FileInfo) (statOf, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statOf{}, false
	}
	return statOf{
		dev: uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
	}, true
}
