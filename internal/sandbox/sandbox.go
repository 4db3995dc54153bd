// Package sandbox runs a runner's engine commands (terraform or tofu, and
// everything they start: provisioners, external programs, providers) in a
// bubblewrap sandbox, so task code reaches nothing of the runner host but
// what the step hands it.
//
// What a sandboxed command sees:
//   - its own mount namespace on a fresh tmpfs root: /usr (read-only, with
//     the /bin, /lib... links of a merged-/usr system), the system files a
//     provider needs from /etc (CA certificates, resolv.conf, hosts,
//     nsswitch.conf, alternatives; read-only), a minimal /etc/passwd and
//     /etc/group, a private /tmp and HOME, its own /proc and a minimal /dev;
//   - the paths its Spec names, at their own paths, read-write or read-only
//     (the step's configuration dir, the engine binary, the plugin cache,
//     provider mirrors, the CLI config);
//   - its own PID namespace with the engine as PID 1: it sees no other
//     process, and when the engine exits the kernel kills everything left in
//     the namespace (setsid and double-fork included);
//   - no capabilities, no new privileges, no further user namespaces, its
//     own IPC namespace; the network is shared (providers need it).
//
// A command runs through a small wrapper script, which is what
// terraform-exec executes. terraform-exec stops a command with SIGINT to the
// process it started, and bubblewrap forwards no signal and would die of it,
// taking the engine down before it could stop gracefully; so the wrapper
// execs bubblewrap with SIGINT ignored, and the caller passes SIGINT to the
// engine itself (Interrupt; bubblewrap's --info-fd names its PID), which
// stops gracefully as it would in a terminal. When bubblewrap is killed
// (terraform-exec's last resort after its grace, or the runner dying:
// terraform-exec asks for SIGKILL at its parent's death), --die-with-parent
// takes the whole sandbox down.
//
// The wrapper is written once, when the Sandbox is made; each step's sandbox
// is a directory of files (Prepare) that the wrapper finds through the
// environment variable EnvDir. A file written while other goroutines fork
// cannot be executed at once (the kernel answers ETXTBSY while a forked
// child still holds its write descriptor), so nothing executable is written
// per step.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Mode is how a runner isolates task code.
type Mode string

// The modes of --isolation.
const (
	// Strict refuses to start without a working sandbox.
	Strict Mode = "strict"
	// Auto sandboxes when the host can, and warns when it cannot.
	Auto Mode = "auto"
	// Off runs engine commands unsandboxed with the runner's environment
	// (the behaviour before isolation existed).
	Off Mode = "off"
)

// ParseMode reads an --isolation value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case Strict, Auto, Off:
		return m, nil
	case "":
		return Auto, nil
	}
	return "", fmt.Errorf("isolation %q: want strict, auto or off", s)
}

// Options configure a Sandbox.
type Options struct {
	Mode Mode
	// Bwrap is the bubblewrap binary; default "bwrap" on PATH.
	Bwrap string
	// Dir is a private directory (the runner's data dir) where the
	// wrapper script is written and the start-up probe runs; default a new
	// directory under the system's temporary directory.
	Dir string
}

// Sandbox decides how a runner's engine commands run. A nil *Sandbox, or
// one that is not Active, runs them unsandboxed.
type Sandbox struct {
	mode    Mode
	bwrap   string
	wrapper string // the wrapper script (Wrapper)
	reason  string // why the sandbox is unavailable, when it is
}

// EnvDir is the environment variable that names a step's sandbox directory
// to the wrapper (which removes it from the engine's environment).
const EnvDir = "TERRATASK_SANDBOX_DIR"

// New finds bubblewrap and proves it works by running a command in a
// sandbox built exactly as a step's would be. In strict mode a sandbox that
// does not work is an error; in auto mode the Sandbox is returned inactive,
// with Reason saying why.
func New(ctx context.Context, o Options) (*Sandbox, error) {
	mode := o.Mode
	if mode == "" {
		mode = Auto
	}
	s := &Sandbox{mode: mode}
	if mode == Off {
		s.reason = "isolation is off (--isolation off)"
		return s, nil
	}
	bin := o.Bwrap
	if bin == "" {
		bin = "bwrap"
	}
	path, err := exec.LookPath(bin)
	if err == nil {
		path, err = filepath.Abs(path)
	}
	if err == nil {
		s.bwrap = path
		if s.wrapper, err = writeWrapper(o.Dir, path); err == nil {
			err = s.probe(ctx)
		}
	} else {
		err = fmt.Errorf("bubblewrap (%s) not found: install it (Debian/Ubuntu: apt-get install bubblewrap; Alpine: apk add bubblewrap; Fedora: dnf install bubblewrap)", bin)
	}
	if err != nil {
		s.bwrap, s.reason = "", err.Error()
		if mode == Strict {
			return nil, fmt.Errorf("isolation strict: %w (or start with --isolation auto or off, see the README's Isolation section)", err)
		}
		return s, nil
	}
	return s, nil
}

// writeWrapper writes the wrapper script for bwrap into dir (a new
// temporary directory when dir is "").
func writeWrapper(dir, bwrap string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "terratask-sandbox-")
		if err != nil {
			return "", fmt.Errorf("sandbox: %w", err)
		}
		dir = d
	} else {
		dir = filepath.Join(dir, "sandbox-bin")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("sandbox: %w", err)
		}
	}
	path := filepath.Join(dir, Wrapper)
	if err := writeFile(path, []byte(wrapperScript(bwrap)), 0o700); err != nil {
		return "", err
	}
	return path, nil
}

// Active reports whether engine commands run sandboxed.
func (s *Sandbox) Active() bool { return s != nil && s.bwrap != "" }

// Mode is the configured mode (Off for a nil Sandbox).
func (s *Sandbox) Mode() Mode {
	if s == nil {
		return Off
	}
	return s.mode
}

// Reason says why the sandbox is not active ("" when it is).
func (s *Sandbox) Reason() string {
	if s == nil {
		return "no sandbox configured"
	}
	return s.reason
}

// Status is a one-line summary for logs and /readyz.
func (s *Sandbox) Status() string {
	switch {
	case s.Active():
		return "sandboxed (bubblewrap " + s.bwrap + ")"
	case s.Mode() == Off:
		return "off: task code runs with the runner's power"
	default:
		return "unavailable: " + s.Reason()
	}
}

// Mount is one path of the host shown inside the sandbox, at the same path
// unless At says otherwise.
type Mount struct {
	Path string
	// At is where it appears inside ("" for Path).
	At string
	// Write makes it read-write; else read-only.
	Write bool
	// Optional skips a path that does not exist instead of failing.
	Optional bool
}

// Spec is one step's sandbox.
type Spec struct {
	// Dir is a private directory of the runner (0700) where the wrapper
	// and its files are written; the caller removes it when the step ends.
	// It is not shown inside the sandbox.
	Dir string
	// Engine is the absolute path of the binary the wrapper runs (it must be
	// visible inside: under /usr, or in Mounts).
	Engine string
	// Mounts are applied in order: a later mount shows through an earlier
	// one (a read-write file inside a read-only dir).
	Mounts []Mount
}

// Wrapper is the file name of the wrapper script.
const Wrapper = "terratask-sandbox"

// Prepare writes spec's files into spec.Dir and returns the wrapper's path:
// run with EnvDir=spec.Dir in its environment, it runs Engine with the
// arguments and environment it is given, inside the sandbox. The
// environment is passed through whole (less EnvDir): the caller builds it
// for the task (see the package doc for what else is visible).
func (s *Sandbox) Prepare(spec Spec) (string, error) {
	if !s.Active() {
		return "", errors.New("the sandbox is not active: " + s.Reason())
	}
	if !filepath.IsAbs(spec.Engine) || !filepath.IsAbs(spec.Dir) {
		return "", fmt.Errorf("sandbox: engine %q and dir %q must be absolute paths", spec.Engine, spec.Dir)
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	args, err := bwrapArgs(spec)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	for _, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return "", fmt.Errorf("sandbox: NUL in argument %q", a)
		}
		buf.WriteString(a)
		buf.WriteByte(0)
	}
	argsFile := filepath.Join(spec.Dir, "bwrap.args")
	if err := writeFile(argsFile, buf.Bytes(), 0o600); err != nil {
		return "", err
	}
	for _, f := range []struct{ name, body string }{{"passwd", passwd()}, {"group", group()}} {
		if err := writeFile(filepath.Join(spec.Dir, f.name), []byte(f.body), 0o644); err != nil {
			return "", err
		}
	}
	if strings.ContainsAny(spec.Engine, "\n") {
		return "", fmt.Errorf("sandbox: newline in engine path %q", spec.Engine)
	}
	if err := writeFile(filepath.Join(spec.Dir, "engine"), []byte(spec.Engine+"\n"), 0o600); err != nil {
		return "", err
	}
	return s.wrapper, nil
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// Home is HOME inside the sandbox (on its private tmpfs).
const Home = "/home/terratask"

// Path is PATH inside the sandbox.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// systemFiles are read from the host's /etc when they exist: name
// resolution, TLS roots, time zones and Debian's alternatives (the targets
// of many /usr/bin links).
var systemFiles = []string{
	"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf",
	"/etc/services", "/etc/protocols", "/etc/localtime",
	"/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/alternatives", "/etc/ld.so.cache",
}

// topLinks are the directories of the root that merged-/usr systems make
// links into /usr.
var topLinks = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// bwrapArgs are the sandbox's bubblewrap arguments, before the per-command
// --chdir, --info-fd and the command.
func bwrapArgs(spec Spec) ([]string, error) {
	// Each namespace and mount costs bubblewrap a little (make bench, row
	// 5.1): the UTS and cgroup namespaces would hide only the host name and
	// cgroup paths, so they are not made.
	a := []string{
		"--unshare-user", "--unshare-pid", "--unshare-ipc",
		"--disable-userns", "--as-pid-1", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
		"--ro-bind", "/usr", "/usr",
	}
	for _, p := range topLinks {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, fmt.Errorf("sandbox: %w", err)
			}
			a = append(a, "--symlink", target, p)
		case fi.IsDir():
			a = append(a, "--ro-bind", p, p)
		}
	}
	for _, p := range systemFiles {
		a = append(a, "--ro-bind-try", p, p)
	}
	a = append(a,
		"--ro-bind", filepath.Join(spec.Dir, "passwd"), "/etc/passwd",
		"--ro-bind", filepath.Join(spec.Dir, "group"), "/etc/group",
		"--proc", "/proc", "--dev", "/dev",
		"--tmpfs", "/tmp", "--dir", Home, "--setenv", "HOME", Home, "--setenv", "TMPDIR", "/tmp",
	)
	if !strings.HasPrefix(spec.Engine, "/usr/") {
		a = append(a, "--ro-bind", spec.Engine, spec.Engine)
	}
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Path) {
			return nil, fmt.Errorf("sandbox: mount %q is not an absolute path", m.Path)
		}
		if _, err := os.Stat(m.Path); err != nil {
			if m.Optional {
				continue
			}
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		flag := "--ro-bind"
		if m.Write {
			flag = "--bind"
		}
		at := m.At
		if at == "" {
			at = m.Path
		} else if !filepath.IsAbs(at) {
			return nil, fmt.Errorf("sandbox: mount target %q is not an absolute path", at)
		}
		a = append(a, flag, m.Path, at)
	}
	return a, nil
}

// passwd and group name the users a sandboxed process may run as (its uid
// is the runner's, mapped into its user namespace).
func passwd() string {
	s := "root:x:0:0:root:" + Home + ":/bin/sh\n"
	if uid := os.Getuid(); uid != 0 && uid != 65534 {
		s += "terratask:x:" + strconv.Itoa(uid) + ":" + strconv.Itoa(os.Getgid()) + ":terratask:" + Home + ":/bin/sh\n"
	}
	return s + "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
}

func group() string {
	s := "root:x:0:\n"
	if gid := os.Getgid(); gid != 0 && gid != 65534 {
		s += "terratask:x:" + strconv.Itoa(gid) + ":\n"
	}
	return s + "nogroup:x:65534:\n"
}

// wrapperScript execs bubblewrap with SIGINT ignored: the SIGINT that
// terraform-exec sends to the process it started must not kill bubblewrap
// (and with it the whole sandbox) at once. Interrupt passes it on to the
// engine instead, PID 1 of the sandbox, whose host PID bubblewrap writes to
// --info-fd (the engine, a Go program, catches SIGINT again). The step's
// directory (EnvDir) holds bubblewrap's arguments and the engine's path;
// the info files go with it at the step's end. Nothing is forked: the
// wrapper costs one exec of the shell.
func wrapperScript(bwrap string) string {
	return `#!/bin/sh
# Generated by terratask (package sandbox): runs the engine in the step's sandbox.
d=$` + EnvDir + `
unset ` + EnvDir + `
if [ -z "$d" ] || ! read -r engine < "$d/engine"; then
  echo "terratask sandbox: no step sandbox (` + EnvDir + `)" >&2
  exit 126
fi
if [ -e "$d/` + ExpiredFile + `" ]; then
  echo "terratask sandbox: the step's lease has expired (package watchdog); not starting" >&2
  exit 125
fi
trap '' INT
exec ` + shQuote(bwrap) + ` --args 3 --chdir "$PWD" --info-fd 4 -- "$engine" "$@" 3<"$d/bwrap.args" 4>"$d/info.$$"
`
}

// ExpiredFile is the file of a step's sandbox dir whose presence stops the
// wrapper from starting a command: the step's lease expired (package
// watchdog).
const ExpiredFile = "expired"

// Interrupt sends SIGINT to the engine of every command running in the
// step's sandbox dir (what terraform-exec's SIGINT to the wrapper would do
// without a sandbox), and returns how many it signalled. A process is
// signalled only while it is still the child of the bubblewrap that named
// it, so a PID reused after a command ended is never touched.
func Interrupt(dir string) int { return signalEngines(dir, syscall.SIGINT) }

// Kill sends SIGKILL to the PID 1 of every sandbox running in the step's
// sandbox dir: the kernel then kills every process of its PID namespace.
// It returns how many it killed (with Interrupt's care for reused PIDs).
func Kill(dir string) int { return signalEngines(dir, syscall.SIGKILL) }

func signalEngines(dir string, sig syscall.Signal) int {
	infos, _ := filepath.Glob(filepath.Join(dir, "info.*"))
	n := 0
	for _, f := range infos {
		bwrapPID, err := strconv.Atoi(strings.TrimPrefix(filepath.Ext(f), "."))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		m := childPIDRe.FindSubmatch(b)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(string(m[1]))
		if err != nil || parentOf(pid) != bwrapPID {
			continue
		}
		if syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

var childPIDRe = regexp.MustCompile(`"child-pid":\s*([0-9]+)`)

// parentOf is pid's parent PID from /proc (0 when pid is gone).
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// probe runs `true` in a sandbox built as a step's would be, through the
// wrapper, within a few seconds. The wrapper was just written: while a
// forked child of another goroutine holds its write descriptor, exec fails
// with ETXTBSY, so that is retried.
func (s *Sandbox) probe(ctx context.Context) error {
	truePath, err := exec.LookPath("true")
	if err != nil {
		return fmt.Errorf("probing the sandbox: %w", err)
	}
	if truePath, err = filepath.EvalSymlinks(truePath); err != nil {
		return fmt.Errorf("probing the sandbox: %w", err)
	}
	dir := filepath.Join(filepath.Dir(s.wrapper), "probe")
	defer os.RemoveAll(dir)
	wrapper, err := s.Prepare(Spec{Dir: dir, Engine: truePath})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		cmd := exec.CommandContext(ctx, wrapper)
		cmd.Dir = "/"
		cmd.Env = []string{EnvDir + "=" + dir, "PATH=" + Path}
		out, err := cmd.CombinedOutput()
		if errors.Is(err, syscall.ETXTBSY) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			msg := strings.TrimSpace(string(out))
			if msg == "" {
				msg = err.Error()
			}
			return fmt.Errorf("bubblewrap cannot create a sandbox here (%s): the kernel must allow user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0) or the runner needs CAP_SYS_ADMIN", msg)
		}
		return nil
	}
}
