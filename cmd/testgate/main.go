// Command testgate runs `go test -json` and holds the suite to what it
// claims: it prints what plain `go test` prints (a line per package, the
// output of failed tests), then every skipped test with its reason, and
// fails the run when a test skipped that the reviewed list (-skips FILE)
// does not name, if the CI environment variable is set. A skip on CI means
// a prerequisite .ci/run should have installed is missing, or a test turned
// itself off: either way the suite no longer proves what it says.
//
//	go run ./cmd/testgate -skips .ci/skips.txt -- go test -json -race ./...
//
// The list has one skip a line, `import/path TestName[/subtest]` followed by
// the reason; `#` starts a comment. Its last line of output is the plain
// summary `N passed, N failed, N skipped`.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	Elapsed    float64
	ImportPath string
}

// skip is a skipped test and why.
type skip struct {
	pkg, test, why string
	listed         bool
}

type gate struct {
	out      io.Writer
	allowed  map[string]string // "pkg Test" -> reason
	outputs  map[string][]string
	pkgFail  map[string]bool
	skips    []skip
	passed   int
	failed   int
	packages int
	building map[string][]string
}

func main() {
	skipsFile := flag.String("skips", "", "file of reviewed skips (import/path TestName reason)")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: testgate [-skips FILE] -- go test -json ...")
		os.Exit(2)
	}
	allowed, err := readSkips(*skipsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testgate:", err)
		os.Exit(2)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testgate:", err)
		os.Exit(2)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testgate:", err)
		os.Exit(2)
	}
	g := newGate(os.Stdout, allowed)
	g.read(stdout)
	runErr := cmd.Wait()
	os.Exit(g.finish(runErr, os.Getenv("CI") != "", time.Since(start)))
}

func newGate(out io.Writer, allowed map[string]string) *gate {
	return &gate{out: out, allowed: allowed, outputs: map[string][]string{}, pkgFail: map[string]bool{}, building: map[string][]string{}}
}

// readSkips reads the reviewed list.
func readSkips(path string) (map[string]string, error) {
	m := map[string]string{}
	if path == "" {
		return m, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want `import/path TestName reason`", path, i+1)
		}
		m[f[0]+" "+f[1]] = strings.Join(f[2:], " ")
	}
	return m, nil
}

// read consumes the JSON stream, printing as plain go test would.
func (g *gate) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || (e.Action == "" && e.ImportPath == "") {
			fmt.Fprintln(g.out, string(line)) // not JSON: pass it on
			continue
		}
		g.handle(e)
	}
}

func (g *gate) handle(e event) {
	key := e.Package + " " + e.Test
	if e.Test == "" && (e.Action == "pass" || e.Action == "skip" || e.Action == "fail") {
		g.packages++
	}
	switch e.Action {
	case "build-output":
		g.building[e.ImportPath] = append(g.building[e.ImportPath], e.Output)
	case "build-fail":
		fmt.Fprint(g.out, strings.Join(g.building[e.ImportPath], ""))
	case "output":
		g.outputs[key] = append(g.outputs[key], e.Output)
		if e.Test == "" {
			// Package-level lines: the result line, and what the test
			// binary printed outside any test (TestMain, a panic).
			if isResultLine(e.Output) || g.pkgFail[e.Package] {
				fmt.Fprint(g.out, e.Output)
			}
		}
	case "pass":
		if e.Test != "" {
			g.passed++
		}
		delete(g.outputs, key)
	case "skip":
		if e.Test == "" {
			delete(g.outputs, key)
			return
		}
		s := skip{pkg: e.Package, test: e.Test, why: skipReason(g.outputs[key])}
		_, s.listed = g.allowed[e.Package+" "+e.Test]
		if !s.listed {
			// A listed parent covers its subtests.
			if i := strings.Index(e.Test, "/"); i > 0 {
				_, s.listed = g.allowed[e.Package+" "+e.Test[:i]]
			}
		}
		g.skips = append(g.skips, s)
		delete(g.outputs, key)
	case "fail":
		if e.Test != "" {
			g.failed++
			fmt.Fprint(g.out, strings.Join(g.outputs[key], ""))
			delete(g.outputs, key)
			return
		}
		if out := g.outputs[key]; len(out) > 0 && !g.pkgFail[e.Package] {
			// A package that failed outside its tests (TestMain, a panic,
			// a timeout): what it printed.
			for _, l := range out {
				if !isResultLine(l) {
					fmt.Fprint(g.out, l)
				}
			}
		}
		g.pkgFail[e.Package] = true
	}
}

func isResultLine(s string) bool {
	return strings.HasPrefix(s, "ok  \t") || strings.HasPrefix(s, "FAIL\t") || strings.HasPrefix(s, "?   \t") ||
		strings.HasPrefix(s, "--- FAIL") || s == "FAIL\n"
}

// skipReason is the message a skipped test logged last before its SKIP
// line.
func skipReason(lines []string) string {
	var last string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		last = t
	}
	if last == "" {
		return "(no reason given)"
	}
	return last
}

// finish prints the skips and the summary and returns the exit code.
func (g *gate) finish(runErr error, ci bool, took time.Duration) int {
	sort.Slice(g.skips, func(i, j int) bool {
		if g.skips[i].pkg != g.skips[j].pkg {
			return g.skips[i].pkg < g.skips[j].pkg
		}
		return g.skips[i].test < g.skips[j].test
	})
	unlisted := 0
	if len(g.skips) > 0 {
		fmt.Fprintf(g.out, "\nSkipped tests (%d):\n", len(g.skips))
		for _, s := range g.skips {
			mark := "reviewed"
			if !s.listed {
				mark = "NOT ON THE LIST"
				unlisted++
			}
			fmt.Fprintf(g.out, "  %-15s %s %s: %s\n", mark, s.pkg, s.test, s.why)
		}
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case runErr != nil && !errors.As(runErr, &ee):
		fmt.Fprintln(g.out, "testgate: running the tests:", runErr)
		code = 1
	case runErr != nil || g.failed > 0 || len(g.pkgFail) > 0:
		code = 1
	case g.packages == 0:
		fmt.Fprintln(g.out, "testgate: no package reported a result")
		code = 1
	}
	if unlisted > 0 {
		if ci {
			fmt.Fprintf(g.out, "testgate: %d test(s) skipped on CI that .ci/skips.txt does not list: install what they need in .ci/run, make them run, or review and list them\n", unlisted)
			code = 1
		} else {
			fmt.Fprintf(g.out, "testgate: %d skip(s) not on the list (CI fails on them)\n", unlisted)
		}
	}
	fmt.Fprintf(g.out, "testgate: %d packages in %s\n", g.packages, took.Round(time.Second))
	fmt.Fprintf(g.out, "%d passed, %d failed, %d skipped\n", g.passed, g.failed, len(g.skips))
	return code
}
