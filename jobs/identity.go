package jobs

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// identity is who a job with USER runs as, read from the system's user
// database when it starts.
type identity struct {
	cred *syscall.Credential
	name string // the user's name, for USER and LOGNAME
	home string // the user's home directory, for HOME
}

// identityError says which key (USER or GROUP) could not be resolved.
type identityError struct {
	key string
	err error
}

func (e *identityError) Error() string { return e.err.Error() }

// lookupIdentity resolves a job's USER and GROUP, each a name or a numeric
// id: the user's uid, the group's gid (by default the user's primary
// group), and the user's supplementary groups, as initgroups(3) would set
// them (GROUP among them). Its errors are *identityError and quote nothing
// from the job file.
func lookupIdentity(userName, group string) (*identity, error) {
	u, err := user.Lookup(userName)
	if err != nil && isNumber(userName) {
		u, err = user.LookupId(userName)
	}
	if err != nil {
		return nil, &identityError{"USER", lookupFailure(err, "USER", "user", "getent passwd")}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, &identityError{"USER", errors.New("USER: the user has no numeric uid")}
	}
	gidText := u.Gid
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil && isNumber(group) {
			g, err = user.LookupGroupId(group)
		}
		if err != nil {
			return nil, &identityError{"GROUP", lookupFailure(err, "GROUP", "group", "getent group")}
		}
		gidText = g.Gid
	}
	gid, err := strconv.ParseUint(gidText, 10, 32)
	if err != nil {
		return nil, &identityError{"GROUP", errors.New("GROUP: the group has no numeric gid")}
	}
	groups := []uint32{uint32(gid)}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, &identityError{"USER", fmt.Errorf("USER: cannot list the user's groups: %v", err)}
	}
	for _, id := range ids {
		if n, err := strconv.ParseUint(id, 10, 32); err == nil {
			groups = append(groups, uint32(n))
		}
	}
	slices.Sort(groups)
	return &identity{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: slices.Compact(groups)},
		name: u.Username,
		home: u.HomeDir,
	}, nil
}

func isNumber(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// lookupFailure words a failed lookup without repeating the name, which
// comes from the job file.
func lookupFailure(err error, key, what, check string) error {
	var unknownUser user.UnknownUserError
	var unknownUID user.UnknownUserIdError
	var unknownGroup user.UnknownGroupError
	var unknownGID user.UnknownGroupIdError
	if errors.As(err, &unknownUser) || errors.As(err, &unknownUID) || errors.As(err, &unknownGroup) || errors.As(err, &unknownGID) {
		return fmt.Errorf("%s: no such %s on this system: check the name with %s", key, what, check)
	}
	return fmt.Errorf("%s: cannot look the %s up: %v", key, what, err)
}

// checkIdentity says whether a daemon running as euid can run j: USER and
// GROUP need root, and must name a user and group that exist. The error
// names the key at fault.
func checkIdentity(j *Job, euid int) error {
	if j.User == "" {
		return nil
	}
	if euid != 0 {
		return &identityError{"USER", fmt.Errorf("USER needs overseerd to run as root (it runs as uid %d): remove USER and GROUP to run the job as uid %d", euid, euid)}
	}
	_, err := lookupIdentity(j.User, j.Group)
	return err
}

// environ returns the variables a job running as id gets before its file's
// own keys: HOME, USER and LOGNAME of that user.
func (id *identity) environ() []string {
	return []string{"HOME=" + id.home, "USER=" + id.name, "LOGNAME=" + id.name}
}

// dir returns the working directory of a job without DIR running as id:
// the user's home, or / when it has none (system users such as nobody).
func (id *identity) dir() string {
	if fi, err := os.Stat(id.home); err == nil && fi.IsDir() {
		return id.home
	}
	return "/"
}
