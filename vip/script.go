package vip

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Who runs scripts, and which scripts are run: keepalived's script_user and
// enable_script_security. The track and notify commands of a config are checked when it
// is validated; the user is resolved when the manager starts and on each reload.

// DefaultScriptUser is the user scripts run as when it exists and script_user is not
// set (keepalived's is keepalived_script).
const DefaultScriptUser = "lbd_script"

// scriptUser is the resolved script_user: the credential to run commands with, nil to
// run them as lbd's own user.
type scriptUser struct {
	name   string
	cred   *syscall.Credential
	secure bool // script_security: check the file before each run
}

// run runs argv as u, after checking it when u.secure.
func (u *scriptUser) run(ctx context.Context, argv []string) error {
	if u.secure {
		if err := checkScriptFile(argv[0]); err != nil {
			return fmt.Errorf("refused by script_security: %w", err)
		}
	}
	return runCommand(ctx, argv, u.cred)
}

// lookupUser is user.Lookup; tests replace it.
var lookupUser = user.Lookup

// resolveScriptUser returns the user scripts run as: name, or DefaultScriptUser when
// name is empty and that user exists, or lbd's own user (fallback true: keepalived
// warns then, and so does the caller).
func resolveScriptUser(name string) (u scriptUser, fallback bool, err error) {
	if name == "" {
		if _, err := lookupUser(DefaultScriptUser); err != nil {
			return scriptUser{name: strconv.Itoa(os.Getuid())}, true, nil
		}
		name = DefaultScriptUser
	}
	pw, err := lookupUser(name)
	if err != nil {
		return scriptUser{}, false, err
	}
	uid, err1 := strconv.ParseUint(pw.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(pw.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return scriptUser{}, false, fmt.Errorf("user %q: %w", name, err)
	}
	u.name = name
	if int(uid) == os.Getuid() && int(gid) == os.Getgid() {
		return u, false, nil // no change of user needed
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := pw.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	u.cred = cred
	return u, false, nil
}

// validateScripts checks script_user and, with script_security, every command.
func (c *Config) validateScripts(errs *fieldErrors) {
	if c.ScriptUser != "" {
		if _, _, err := resolveScriptUser(c.ScriptUser); err != nil {
			errs.add("script_user", "(%q): %v", c.ScriptUser, err)
		}
	}
	if c.ScriptSecurity != nil && !*c.ScriptSecurity {
		return
	}
	check := func(path string, argv []string) {
		if len(argv) == 0 || argv[0] == "" {
			return
		}
		if err := checkScriptFile(argv[0]); err != nil {
			errs.add(path, "%v (script_security)", err)
		}
	}
	notify := func(p string, n Notify) {
		check(p+".master", n.Master)
		check(p+".backup", n.Backup)
		check(p+".fault", n.Fault)
		check(p+".stop", n.Stop)
		check(p+".any", n.Any)
	}
	for i, in := range c.Instances {
		p := fmt.Sprintf("instances[%d]", i)
		for j, s := range in.TrackScripts {
			check(fmt.Sprintf("%s.track_scripts[%d].command", p, j), s.Command)
		}
		notify(p+".notify", in.Notify)
	}
	for i, g := range c.SyncGroups {
		notify(fmt.Sprintf("sync_groups[%d].notify", i), g.Notify)
	}
}

// checkScriptFile returns an error when the program name (found in $PATH when it has no
// slash) resolves to a file that a user other than root or lbd's own may change: the
// file or a directory above it is owned by another user, or writable by a group other
// than root's (or lbd's) or by others. A program that is not found passes: running it
// fails and is logged.
func checkScriptFile(name string) error {
	path := name
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil {
			return nil
		}
		path = p
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil // not found
	}
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("(%q): %w", real, err)
		}
		if why := unsafeOwner(fi); why != "" {
			if p == real {
				return fmt.Errorf("(%q) %s: others could change the script", real, why)
			}
			return fmt.Errorf("(%q) is in directory %s, which %s: others could replace the script", real, p, why)
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

// unsafeOwner says why fi may be changed by a user other than root or lbd's own, or "".
func unsafeOwner(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	mode := fi.Mode().Perm()
	switch {
	case st.Uid != 0 && int(st.Uid) != os.Getuid():
		return fmt.Sprintf("is owned by uid %d", st.Uid)
	case mode&0o002 != 0:
		return fmt.Sprintf("is writable by others (mode %#o)", mode)
	case mode&0o020 != 0 && st.Gid != 0 && int(st.Gid) != os.Getgid():
		return fmt.Sprintf("is writable by group %d (mode %#o)", st.Gid, mode)
	}
	return ""
}
