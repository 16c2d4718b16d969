package jobs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
)

// procStart returns when process pid started, as "BOOT_ID/TICKS", and
// whether it is a zombie (dead, not yet reaped). A pid the system reuses
// gets another start, so pid and start together name one process.
func procStart(pid int) (start string, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false, err
	}
	// pid (comm) state ppid ... starttime is field 22; comm may hold
	// spaces and parentheses, so count from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", false, errors.New("unreadable /proc stat")
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return "", false, errors.New("unreadable /proc stat")
	}
	boot, err := bootID()
	if err != nil {
		return "", false, err
	}
	return boot + "/" + string(f[19]), string(f[0]) == "Z", nil
}

// bootID names this boot of the system; read once, as it cannot change
// while we run.
var bootID = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b)), err
})
