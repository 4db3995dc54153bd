// Package policy compiles and evaluates an org's policies: Rego v1 modules,
// run with OPA's Go library, embedded. Only the control plane imports it
// (package controlplane evaluates, package server checks and dry-runs):
// task code on a runner host must not be able to change a decision.
//
// Every module of an org's set is compiled together, once per set of
// versions (Cache), into one prepared query that gathers, for every
// package, the rules deny, require_approval and warn. A rule's value is a
// set of messages, as conftest and Atlantis write them: strings, or objects
// with a "msg" key (conftest's structured form); a boolean rule (`deny if
// ...`) counts as one message naming its policy. Any deny message denies
// the task; else any require_approval message makes its plan wait for a
// person; warnings are only recorded (task.PolicyCheck).
//
// Evaluation fails closed: a runtime error (a conflict of a complete rule,
// for example) or the one-second limit (EvalTimeout) is a check with
// decision task.PolicyError. Builtins that reach outside the evaluation
// (http.send, net.lookup_ip_addr, opa.runtime, which returns the process's
// environment) or that allocate without bound from a small input
// (numbers.range, numbers.range_step, net.cidr_expand) are not available:
// a module that calls one does not compile.
package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/terratask/terratask/task"
)

// EvalTimeout bounds one evaluation of a set.
const EvalTimeout = time.Second

// Module is one version of one policy.
type Module struct {
	Name    string
	Version int
	// SHA256 is the hex SHA-256 of Rego (Digest).
	SHA256 string
	Rego   string
}

// Digest is the hex SHA-256 of a module's text.
func Digest(rego string) string {
	sum := sha256.Sum256([]byte(rego))
	return hex.EncodeToString(sum[:])
}

// Ref is the module's reference as a task records it.
func (m Module) Ref() task.PolicyRef {
	return task.PolicyRef{Name: m.Name, Version: m.Version, SHA256: m.SHA256}
}

// FileName is the file name a module's errors name: the policy's name with
// ".rego".
func FileName(name string) string { return name + ".rego" }

// Problem is one compile error of one policy, at a line and column.
type Problem struct {
	Policy  string `json:"policy"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// CompileError lists why a set does not compile.
type CompileError struct {
	Problems []Problem
}

func (e *CompileError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s:%d:%d: %s", FileName(p.Policy), p.Line, p.Column, p.Message)
	}
	return b.String()
}

// blocked are the builtins no policy may call (see the package doc).
var blocked = []string{
	"http.send", "net.lookup_ip_addr", "opa.runtime",
	"numbers.range", "numbers.range_step", "net.cidr_expand",
}

var (
	capsOnce sync.Once
	caps     *ast.Capabilities
)

// capabilities is OPA's builtins less the blocked ones.
func capabilities() *ast.Capabilities {
	capsOnce.Do(func() {
		c := ast.CapabilitiesForThisVersion()
		kept := make([]*ast.Builtin, 0, len(c.Builtins))
		for _, b := range c.Builtins {
			if !slices.Contains(blocked, b.Name) {
				kept = append(kept, b)
			}
		}
		c.Builtins = kept
		caps = c
	})
	return caps
}

// Blocked lists the builtins no policy may call.
func Blocked() []string { return slices.Clone(blocked) }

// rules are the rule names a set reads from every package, in the order
// results list them.
var rules = []string{task.RuleDeny, task.RuleRequireApproval, task.RuleWarn}

// output is one variable of the set's query: one rule of one package.
type output struct {
	v    string
	rule string
	// module is the policy results name: the first module (by name) of
	// the package that defines the rule.
	module Module
}

// Set is an org's policies, compiled, ready to evaluate.
type Set struct {
	modules   []Module
	query     rego.PreparedEvalQuery
	outputs   []output
	readsPlan bool
}

// Policies are the versions the set holds, by name.
func (s *Set) Policies() []task.PolicyRef {
	out := make([]task.PolicyRef, len(s.modules))
	for i, m := range s.modules {
		out[i] = m.Ref()
	}
	return out
}

// Empty reports whether the set holds no policy.
func (s *Set) Empty() bool { return s == nil || len(s.modules) == 0 }

// ReadsPlan reports whether a module reads more of the input than the
// task's own description (input.terratask without its stage): only then
// can its post_plan result differ from its pre_plan one, and only then
// does a task need its plan's JSON kept for the post_plan check.
func (s *Set) ReadsPlan() bool { return s != nil && s.readsPlan }

// Parse parses one module as Rego v1, for errors with line and column.
func Parse(name, text string) (*ast.Module, error) {
	m, err := ast.ParseModuleWithOpts(FileName(name), text, ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities()})
	if err != nil {
		return nil, compileError(name, err)
	}
	if m == nil {
		return nil, &CompileError{Problems: []Problem{{Policy: name, Line: 1, Column: 1, Message: "the module is empty: it needs a package declaration"}}}
	}
	return m, nil
}

// compileError turns OPA's errors into problems naming the policy.
func compileError(fallback string, err error) error {
	var errs ast.Errors
	if !errors.As(err, &errs) {
		return &CompileError{Problems: []Problem{{Policy: fallback, Line: 1, Column: 1, Message: err.Error()}}}
	}
	ce := &CompileError{}
	for _, e := range errs {
		p := Problem{Policy: fallback, Message: e.Message}
		if e.Location != nil {
			p.Line, p.Column = e.Location.Row, e.Location.Col
			if f := strings.TrimSuffix(e.Location.File, ".rego"); f != "" {
				p.Policy = f
			}
		}
		ce.Problems = append(ce.Problems, p)
	}
	return ce
}

// Compile compiles mods together.
func Compile(mods []Module) (*Set, error) {
	mods = slices.Clone(mods)
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	s := &Set{modules: mods}
	if len(mods) == 0 {
		return s, nil
	}
	parsed := make(map[string]*ast.Module, len(mods))
	for _, m := range mods {
		pm, err := Parse(m.Name, m.Rego)
		if err != nil {
			return nil, err
		}
		parsed[FileName(m.Name)] = pm
	}
	c := ast.NewCompiler().WithCapabilities(capabilities())
	if c.Compile(parsed); c.Failed() {
		return nil, compileError(mods[0].Name, c.Errors)
	}
	// One variable per (package, rule) some module defines, each the
	// rule's value in a one-element array, or empty when it is undefined.
	type key struct{ pkg, rule string }
	seen := map[key]bool{}
	var body []string
	for _, m := range mods {
		cm := c.Modules[FileName(m.Name)]
		pkg := cm.Package.Path.String()
		for _, r := range cm.Rules {
			name := ruleName(r)
			if !slices.Contains(rules, name) || seen[key{pkg, name}] {
				continue
			}
			seen[key{pkg, name}] = true
			v := fmt.Sprintf("r%d", len(s.outputs))
			s.outputs = append(s.outputs, output{v: v, rule: name, module: m})
			body = append(body, fmt.Sprintf("%s := [x | x := %s.%s]", v, pkg, name))
		}
		if !s.readsPlan && readsPlan(cm) {
			s.readsPlan = true
		}
	}
	if len(body) == 0 {
		// Modules that define none of the rules decide nothing.
		body = append(body, "true")
	}
	q, err := ast.ParseBodyWithOpts(strings.Join(body, "; "), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, fmt.Errorf("policy: building the set's query: %w", err)
	}
	pq, err := rego.New(rego.Compiler(c), rego.ParsedQuery(q)).PrepareForEval(context.Background())
	if err != nil {
		return nil, compileError(mods[0].Name, err)
	}
	s.query = pq
	return s, nil
}

// ruleName is the first term of a rule's head (deny of `deny contains msg
// if ...`).
func ruleName(r *ast.Rule) string {
	if ref := r.Head.Ref(); len(ref) > 0 {
		if v, ok := ref[0].Value.(ast.Var); ok {
			return string(v)
		}
	}
	return string(r.Head.Name)
}

// readsPlan reports whether a compiled module reads the input beyond
// input.terratask (its stage aside).
func readsPlan(m *ast.Module) bool {
	reads := false
	inputRefs := 0
	ast.WalkRefs(m, func(ref ast.Ref) bool {
		if !ref.HasPrefix(ast.InputRootRef) {
			return false
		}
		inputRefs++
		if len(ref) < 2 || !ref[1].Equal(ast.StringTerm("terratask")) {
			reads = true
		} else if len(ref) < 3 || !ref[2].IsGround() || ref[2].Equal(ast.StringTerm("stage")) {
			reads = true
		}
		return false
	})
	if reads {
		return true
	}
	// A bare `input` (a whole-document use) reads everything.
	vars := 0
	ast.WalkVars(m, func(v ast.Var) bool {
		if v.Equal(ast.InputRootDocument.Value) {
			vars++
		}
		return false
	})
	return vars > inputRefs
}

// Eval evaluates the set for one stage of a task; input is the whole input
// document. It never fails: an error is a check with decision
// task.PolicyError. A nil or empty set allows.
func (s *Set) Eval(ctx context.Context, stage string, input ast.Value) *task.PolicyCheck {
	check := &task.PolicyCheck{Decision: task.PolicyAllow, Stage: stage, Results: []task.PolicyResult{}}
	if s.Empty() {
		return check
	}
	check.Policies = s.Policies()
	if len(s.outputs) == 0 {
		return check
	}
	ctx, cancel := context.WithTimeout(ctx, EvalTimeout)
	defer cancel()
	rs, err := s.query.Eval(ctx, rego.EvalParsedInput(input))
	if err == nil && len(rs) != 1 {
		err = errors.New("the policies' query had no result")
	}
	if err != nil {
		check.Decision = task.PolicyError
		check.Error = evalError(ctx, err)
		return check
	}
	for _, o := range s.outputs {
		vals, _ := rs[0].Bindings[o.v].([]any)
		for _, val := range vals {
			for _, msg := range messages(val, o.module.Name, o.rule) {
				check.Results = append(check.Results, task.PolicyResult{Policy: o.module.Name, Version: o.module.Version, Rule: o.rule, Message: msg})
			}
		}
	}
	sort.SliceStable(check.Results, func(i, j int) bool {
		a, b := check.Results[i], check.Results[j]
		if a.Policy != b.Policy {
			return a.Policy < b.Policy
		}
		if a.Rule != b.Rule {
			return slices.Index(rules, a.Rule) < slices.Index(rules, b.Rule)
		}
		return a.Message < b.Message
	})
	check.Decision = decide(check.Results)
	return check
}

// evalError says why an evaluation failed, without the input.
func evalError(ctx context.Context, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("the policies did not finish within %s", EvalTimeout)
	}
	return "evaluating the policies: " + err.Error()
}

// decide is the decision of a check's results.
func decide(rs []task.PolicyResult) string {
	d := task.PolicyAllow
	for _, r := range rs {
		switch r.Rule {
		case task.RuleDeny:
			return task.PolicyDeny
		case task.RuleRequireApproval:
			d = task.PolicyRequireApproval
		}
	}
	return d
}

// messages reads a rule's value: a set or array of messages, a message, or
// true (one message naming the policy); false and empty decide nothing.
func messages(val any, policy, rule string) []string {
	switch v := val.(type) {
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, message(x))
		}
		return out
	case bool:
		if v {
			return []string{fmt.Sprintf("%s of policy %s", rule, policy)}
		}
		return nil
	case nil:
		return nil
	default:
		return []string{message(v)}
	}
}

// message is one message: a string, an object's "msg", or the JSON of
// anything else.
func message(x any) string {
	switch v := x.(type) {
	case string:
		return v
	case map[string]any:
		if m, ok := v["msg"].(string); ok {
			return m
		}
	}
	b, err := json.Marshal(x)
	if err != nil {
		return fmt.Sprint(x)
	}
	return string(b)
}

// Cache keeps compiled sets by the versions they hold, so each set of
// versions is compiled once per process. A set that failed to compile is
// kept too (its error).
type Cache struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
	order   []string
}

type cacheEntry struct {
	once sync.Once
	set  *Set
	err  error
}

// cacheSize bounds the sets a cache keeps: a few versions of each org's
// set.
const cacheSize = 256

// Get returns mods compiled.
func (c *Cache) Get(mods []Module) (*Set, error) {
	k := setKey(mods)
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*cacheEntry{}
	}
	e, ok := c.entries[k]
	if !ok {
		e = &cacheEntry{}
		c.entries[k] = e
		c.order = append(c.order, k)
		if len(c.order) > cacheSize {
			delete(c.entries, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	e.once.Do(func() { e.set, e.err = Compile(mods) })
	return e.set, e.err
}

// setKey identifies a set by its modules' names, versions and digests.
func setKey(mods []Module) string {
	keys := make([]string, len(mods))
	for i, m := range mods {
		keys[i] = fmt.Sprintf("%s\x00%d\x00%s", m.Name, m.Version, m.SHA256)
	}
	sort.Strings(keys)
	return strings.Join(keys, "\x01")
}
