package main

import "syscall"

// mountTmpfs mounts a tmpfs of size (e.g. 2m) on dir.
func mountTmpfs(dir, size string) error {
	return syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700")
}

// unmount detaches what is mounted on dir, even while files are open in it.
func unmount(dir string) {
	syscall.Unmount(dir, syscall.MNT_DETACH)
}
