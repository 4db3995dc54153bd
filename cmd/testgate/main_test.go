package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// A stream as go test -json writes it: one package passes with a reviewed
// skip and an unreviewed one, another fails a test.
const stream = `{"Action":"start","Package":"ex/a"}
{"Action":"run","Package":"ex/a","Test":"TestOK"}
{"Action":"output","Package":"ex/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"ex/a","Test":"TestOK","Elapsed":0}
{"Action":"run","Package":"ex/a","Test":"TestNeedsPG"}
{"Action":"output","Package":"ex/a","Test":"TestNeedsPG","Output":"    a_test.go:9: pgtest: no postgres\n"}
{"Action":"output","Package":"ex/a","Test":"TestNeedsPG","Output":"--- SKIP: TestNeedsPG (0.00s)\n"}
{"Action":"skip","Package":"ex/a","Test":"TestNeedsPG","Elapsed":0}
{"Action":"run","Package":"ex/a","Test":"TestShort"}
{"Action":"output","Package":"ex/a","Test":"TestShort","Output":"    a_test.go:12: slow\n"}
{"Action":"skip","Package":"ex/a","Test":"TestShort","Elapsed":0}
{"Action":"output","Package":"ex/a","Output":"ok  \tex/a\t0.1s\n"}
{"Action":"pass","Package":"ex/a","Elapsed":0.1}
{"Action":"run","Package":"ex/b","Test":"TestBroken"}
{"Action":"output","Package":"ex/b","Test":"TestBroken","Output":"    b_test.go:3: want 1, got 2\n"}
{"Action":"output","Package":"ex/b","Test":"TestBroken","Output":"--- FAIL: TestBroken (0.00s)\n"}
{"Action":"fail","Package":"ex/b","Test":"TestBroken","Elapsed":0}
{"Action":"output","Package":"ex/b","Output":"FAIL\tex/b\t0.2s\n"}
{"Action":"fail","Package":"ex/b","Elapsed":0.2}
`

func TestGate(t *testing.T) {
	var out bytes.Buffer
	g := newGate(&out, map[string]string{"ex/a TestShort": "reviewed: runs in the bench"})
	g.read(strings.NewReader(stream))
	code := g.finish(errors.New("exit status 1"), true, time.Second)
	s := out.String()
	for _, want := range []string{"ok  \tex/a\t0.1s", "want 1, got 2", "--- FAIL: TestBroken", "FAIL\tex/b",
		"NOT ON THE LIST ex/a TestNeedsPG: a_test.go:9: pgtest: no postgres", "reviewed        ex/a TestShort: a_test.go:12: slow",
		"1 test(s) skipped on CI", "\n1 passed, 1 failed, 2 skipped\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in:\n%s", want, s)
		}
	}
	if strings.Contains(s, "=== RUN   TestOK") {
		t.Errorf("a passing test's output was printed:\n%s", s)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

// Only the unreviewed skip fails a run on CI, and only on CI.
func TestGateSkipsOnlyFailOnCI(t *testing.T) {
	passing := strings.ReplaceAll(strings.Split(stream, `{"Action":"run","Package":"ex/b"`)[0], "", "")
	for _, ci := range []bool{false, true} {
		var out bytes.Buffer
		g := newGate(&out, nil)
		g.read(strings.NewReader(passing))
		code := g.finish(nil, ci, time.Second)
		if want := map[bool]int{false: 0, true: 1}[ci]; code != want {
			t.Errorf("ci=%v: exit code %d, want %d\n%s", ci, code, want, out.String())
		}
	}
	var out bytes.Buffer
	g := newGate(&out, map[string]string{"ex/a TestNeedsPG": "x", "ex/a TestShort": "y"})
	g.read(strings.NewReader(passing))
	if code := g.finish(nil, true, time.Second); code != 0 {
		t.Errorf("every skip reviewed: exit code %d\n%s", code, out.String())
	}
	// Nothing ran at all: a failure, not a pass.
	out.Reset()
	g = newGate(&out, nil)
	if code := g.finish(nil, true, time.Second); code != 1 {
		t.Errorf("no packages: exit code %d", code)
	}
}
