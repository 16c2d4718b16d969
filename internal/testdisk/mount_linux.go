package testdisk

import "syscall"

// Mount mounts a tmpfs of size (e.g. "2m"), mode 0700, on dir, which must
// exist. It needs root.
func Mount(dir, size string) error {
	return syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700")
}

// Unmount detaches what is mounted on dir, even while files are open in it.
func Unmount(dir string) { syscall.Unmount(dir, syscall.MNT_DETACH) }
