package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// Test runs the Rego tests of a directory (its *_test.rego files' test_
// rules) with OPA's test runner, as `opa test` would, but the way the
// server compiles policies: Rego v1, without the blocked builtins (a module
// that calls one does not compile). Every *.rego file below dir is loaded,
// hidden files and directories aside, as LoadDir skips them.
//
// It writes a line per test to w, a failed one (or one whose evaluation
// failed) always and a passed one when verbose: "PASS data.pkg.test_x", or
// "FAIL data.pkg.test_y (file.rego:12)" with what the test printed; then a
// summary line. A module that does not parse or compile is err, a
// *CompileError naming file:line:col; so is a directory without tests.
func Test(ctx context.Context, dir string, verbose bool, w io.Writer) (passed, failed int, err error) {
	mods := map[string]*ast.Module{}
	var first string
	err = walkRego(dir, func(path, _ string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		m, err := parseFile(path, string(b))
		if err != nil {
			return err
		}
		if first == "" {
			first = path
		}
		mods[path] = m
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if len(mods) == 0 {
		return 0, 0, fmt.Errorf("no Rego files in %s", dir)
	}
	c := ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithEnablePrintStatements(true).
		WithDefaultRegoVersion(ast.RegoV1)
	r := tester.NewRunner().
		SetCompiler(c).
		SetDefaultRegoVersion(ast.RegoV1).
		SetModules(mods).
		CapturePrintOutput(true)
	ch, err := r.RunTests(ctx, nil)
	if err != nil {
		return 0, 0, compileError(strings.TrimSuffix(first, regoExt), err)
	}
	var results []*tester.Result
	for res := range ch {
		results = append(results, res)
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if len(results) == 0 {
		return 0, 0, fmt.Errorf("no tests in %s: a test is a rule named test_... in a *_test.rego file", dir)
	}
	// In the order of the files, then of the tests in each.
	sort.Slice(results, func(i, j int) bool {
		a, b := results[i], results[j]
		af, ar := location(a)
		bf, br := location(b)
		if af != bf {
			return af < bf
		}
		if ar != br {
			return ar < br
		}
		return a.Name < b.Name
	})
	skipped := 0
	for _, res := range results {
		name := res.Package + "." + res.Name
		file, row := location(res)
		switch {
		case res.Skip:
			skipped++
			if verbose {
				fmt.Fprintf(w, "SKIP %s\n", name)
			}
		case res.Pass():
			passed++
			if verbose {
				fmt.Fprintf(w, "PASS %s\n", name)
			}
		case res.Error != nil:
			failed++
			fmt.Fprintf(w, "ERROR %s (%s:%d): %v\n", name, file, row, res.Error)
			printOutput(w, res.Output)
		default:
			failed++
			fmt.Fprintf(w, "FAIL %s (%s:%d)\n", name, file, row)
			printOutput(w, res.Output)
		}
	}
	summary := fmt.Sprintf("%d passed, %d failed", passed, failed)
	if skipped > 0 {
		summary += fmt.Sprintf(", %d skipped", skipped)
	}
	fmt.Fprintf(w, "%s (%d tests)\n", summary, len(results))
	return passed, failed, nil
}

// parseFile parses one file as Parse does a policy; errors name the file.
func parseFile(path, text string) (*ast.Module, error) {
	fallback := strings.TrimSuffix(path, regoExt)
	empty := &CompileError{Problems: []Problem{{Policy: fallback, Line: 1, Column: 1, Message: "the module is empty: it needs a package declaration"}}}
	m, err := ast.ParseModuleWithOpts(path, text, ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities()})
	var one *ast.Error
	switch {
	case errors.As(err, &one) && one.Code == ast.ParseErr && one.Message == "empty module":
		return nil, empty
	case errors.As(err, &one):
		return nil, compileError(fallback, ast.Errors{one})
	case err != nil:
		return nil, compileError(fallback, err)
	case m == nil:
		return nil, empty
	}
	return m, nil
}

// location is where a test is defined.
func location(r *tester.Result) (string, int) {
	if r.Location == nil {
		return "", 0
	}
	return r.Location.File, r.Location.Row
}

// printOutput writes what a test printed, indented.
func printOutput(w io.Writer, out []byte) {
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
}
