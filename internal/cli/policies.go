package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/task"
)

// PoliciesCommand is `terratask policies`: the org's Rego policies through
// the API, and a directory's tests run locally.
func PoliciesCommand(env Env) *cobra.Command {
	o := &options{env: env}
	cmd := &cobra.Command{
		Use:   "policies",
		Short: "Manage, test and try the org's Rego policies",
		Long: `Manage the org's policies: Rego v1 modules the control plane evaluates for every task,
before any task code runs (pre_plan) and against its plan (post_plan). Their deny,
require_approval and warn rules decide whether the task runs, waits for a person, or
only records a warning.

list, get, versions, put, delete and push (a directory, one policy a file) need an admin
key; evaluate (a dry run for a task that is not created) any key of the org; test runs a
directory's Rego tests here, with no server and no key.

The API's address comes from --address or TERRATASK_ADDRESS (default ` + client.DefaultAddress + `),
the API key from TERRATASK_API_KEY. Output is a table on a terminal and JSON otherwise
(--output).`,
	}
	cmd.Args, cmd.RunE = cobra.ArbitraryArgs, missingCommand
	addClientFlags(cmd, o)
	cmd.AddCommand(o.policyListCommand(), o.policyGetCommand(), o.policyVersionsCommand(), o.policyPutCommand(),
		o.policyDeleteCommand(), o.policyPushCommand(), o.policyTestCommand(), o.policyEvaluateCommand())
	return cmd
}

func (o *options) policyListCommand() *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the org's policies (admin)", Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			ps, err := c.ListPolicies(cmd.Context())
			if err != nil {
				return apiFailure(err)
			}
			if ps == nil {
				ps = []api.Policy{}
			}
			if asJSON {
				return printJSON(o.env.Stdout, ps)
			}
			rows := make([][]string, 0, len(ps))
			for _, p := range ps {
				rows = append(rows, []string{p.Name, fmt.Sprint(p.Version), p.Source, shortSHA(p.SHA256), p.CreatedBy, p.CreatedAt, dash(p.Description)})
			}
			return table(o.env.Stdout, []string{"NAME", "VERSION", "SOURCE", "SHA256", "BY", "UPDATED", "DESCRIPTION"}, rows)
		},
	}
}

func (o *options) policyGetCommand() *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use: "get NAME", Short: "Print a policy's Rego, or JSON with --output json (admin)", Args: exactArgs(1, "NAME"),
		Example: "  terratask policies get no_local_exec\n  terratask policies get no_local_exec --version 2 -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			if version < 0 {
				return usage("--version %d: want a version from 1 (0: the current one)", version)
			}
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			p, err := c.GetPolicy(cmd.Context(), args[0], version)
			if err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(o.env.Stdout, p)
			}
			text := p.Rego
			if text != "" && !strings.HasSuffix(text, "\n") {
				text += "\n"
			}
			_, err = io.WriteString(o.env.Stdout, text)
			return err
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "this version rather than the current one")
	return cmd
}

func (o *options) policyVersionsCommand() *cobra.Command {
	return &cobra.Command{
		Use: "versions NAME", Short: "List a policy's versions, newest first (admin)", Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			vs, err := c.PolicyVersions(cmd.Context(), args[0])
			if err != nil {
				return apiFailure(err)
			}
			if vs == nil {
				vs = []api.Policy{}
			}
			if asJSON {
				return printJSON(o.env.Stdout, vs)
			}
			rows := make([][]string, 0, len(vs))
			for _, p := range vs {
				desc := dash(p.Description)
				if p.Deleted {
					desc = "(deleted)"
				}
				rows = append(rows, []string{fmt.Sprint(p.Version), dash(shortSHA(p.SHA256)), p.Source, p.CreatedBy, p.CreatedAt, desc})
			}
			return table(o.env.Stdout, []string{"VERSION", "SHA256", "SOURCE", "BY", "CREATED", "DESCRIPTION"}, rows)
		},
	}
}

func (o *options) policyPutCommand() *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "put NAME FILE",
		Short: "Write a policy's next version from a Rego file (- reads stdin; admin)",
		Long: `Write a policy's next version: FILE's Rego v1 module (- reads stdin). It must compile with
the org's other policies; if it does not, nothing changes and each problem is printed
as FILE:LINE:COLUMN. The same text and description as the current version change
nothing. A policy loaded from the server's --policy-dir cannot be changed here.`,
		Example: "  terratask policies put no_local_exec deployments/policies/no_local_exec.rego --description \"no local-exec\"",
		Args:    exactArgs(2, "NAME FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, file := args[0], args[1]
			if !policy.ValidName(name) {
				return usage("policy name %q: want 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
			}
			text, err := o.readFile(file)
			if err != nil {
				return err
			}
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			p, created, err := c.PutPolicy(cmd.Context(), name, text, description)
			if err != nil {
				return policyFailure(err, map[string]string{name: file})
			}
			if asJSON {
				return printJSON(o.env.Stdout, p)
			}
			verb := "stored"
			if created {
				verb = "created"
			}
			_, err = fmt.Fprintf(o.env.Stdout, "%s %s version %d\n", verb, p.Name, p.Version)
			return err
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what the policy enforces")
	return cmd
}

func (o *options) policyDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a policy; its versions stay listed (admin)", Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			if err := c.DeletePolicy(cmd.Context(), args[0]); err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(o.env.Stdout, map[string]any{"name": args[0], "deleted": true})
			}
			_, err = fmt.Fprintf(o.env.Stdout, "deleted %s\n", args[0])
			return err
		},
	}
}

// pushResult is what push did to one policy.
type pushResult struct {
	Name string `json:"name"`
	// Result is created, updated, unchanged, deleted or failed.
	Result  string `json:"result"`
	Version int    `json:"version,omitempty"`
	Path    string `json:"path,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (o *options) policyPushCommand() *cobra.Command {
	var prune bool
	cmd := &cobra.Command{
		Use:   "push DIR",
		Short: "Write a directory's *.rego files as the org's policies (--prune: delete the others; admin)",
		Long: `Write every policy of DIR whose text differs from the org's current version: each *.rego
file below DIR, tests (*_test.rego) and hidden files aside, is the policy named by its
path without .rego, separators as dots (aws/tags.rego is aws.tags). A policy keeps its
description. With --prune, the org's policies written through the API that DIR does not
hold are deleted (those of the server's --policy-dir are not touched).

Every file is parsed before anything is written. A policy the server refuses (it does
not compile with the others, or --policy-dir manages it) is reported and the others
are still pushed; the exit status is then 1.`,
		Example: "  terratask policies test deployments/policies && terratask policies push deployments/policies --prune",
		Args:    exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := o.json()
			if err != nil {
				return err
			}
			mods, err := policy.LoadDir(args[0])
			if err != nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
			if len(mods) == 0 {
				return &ExitError{Code: ExitFailed, Err: fmt.Errorf("no policies in %s: nothing to push", args[0])}
			}
			paths := map[string]string{}
			for _, m := range mods {
				paths[m.Name] = m.Path
				if _, err := policy.Parse(m.Name, m.Rego); err != nil {
					return policyFailure(err, paths)
				}
			}
			c, err := o.client()
			if err != nil {
				return usage("%v", err)
			}
			results, err := push(cmd.Context(), c, mods, prune)
			if err != nil {
				return apiFailure(err)
			}
			failed := 0
			for _, r := range results {
				if r.Result == "failed" {
					failed++
				}
			}
			if asJSON {
				if err := printJSON(o.env.Stdout, results); err != nil {
					return err
				}
			} else {
				rows := make([][]string, 0, len(results))
				for _, r := range results {
					v := "-"
					if r.Version > 0 {
						v = fmt.Sprint(r.Version)
					}
					rows = append(rows, []string{r.Name, r.Result, v})
				}
				if err := table(o.env.Stdout, []string{"POLICY", "RESULT", "VERSION"}, rows); err != nil {
					return err
				}
				for _, r := range results {
					if r.Error != "" {
						fmt.Fprintf(o.env.Stderr, "%s: %s\n", r.Name, r.Error)
					}
				}
			}
			if failed > 0 {
				return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%d of %d policies not pushed", failed, len(mods))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&prune, "prune", false, "delete the org's API-written policies that DIR does not hold")
	return cmd
}

// push writes mods whose text differs from the org's current versions, in
// rounds: a policy the server refuses as invalid is tried again after the
// others (one may call a function another defines), and once more after
// the deletions of --prune. It returns a result per policy by name, the
// deletions after; err is an API failure that stopped it (a listing).
func push(ctx context.Context, c *client.Client, mods []policy.DirModule, prune bool) ([]pushResult, error) {
	cur, err := c.ListPolicies(ctx)
	if err != nil {
		return nil, err
	}
	current := map[string]api.Policy{}
	for _, p := range cur {
		current[p.Name] = p
	}
	results := map[string]*pushResult{}
	var pending []policy.DirModule
	inDir := map[string]bool{}
	for _, m := range mods {
		inDir[m.Name] = true
		if p, ok := current[m.Name]; ok && p.SHA256 == policy.Digest(m.Rego) {
			results[m.Name] = &pushResult{Name: m.Name, Result: "unchanged", Version: p.Version, Path: m.Path}
			continue
		}
		pending = append(pending, m)
	}
	// rounds puts pending until a round writes nothing more.
	rounds := func() {
		for len(pending) > 0 {
			var again []policy.DirModule
			for _, m := range pending {
				p, created, err := c.PutPolicy(ctx, m.Name, m.Rego, current[m.Name].Description)
				switch {
				case errors.Is(err, client.ErrPolicyInvalid):
					results[m.Name] = &pushResult{Name: m.Name, Result: "failed", Path: m.Path, Error: policyError(err, map[string]string{m.Name: m.Path}).Error()}
					again = append(again, m)
				case err != nil:
					results[m.Name] = &pushResult{Name: m.Name, Result: "failed", Path: m.Path, Error: err.Error()}
				case created:
					results[m.Name] = &pushResult{Name: m.Name, Result: "created", Version: p.Version, Path: m.Path}
				default:
					results[m.Name] = &pushResult{Name: m.Name, Result: "updated", Version: p.Version, Path: m.Path}
				}
			}
			if len(again) == len(pending) {
				return
			}
			pending = again
		}
	}
	rounds()
	var deleted []pushResult
	if prune {
		for _, p := range cur {
			if inDir[p.Name] || p.Source != "api" {
				continue
			}
			r := pushResult{Name: p.Name, Result: "deleted"}
			if err := c.DeletePolicy(ctx, p.Name); err != nil && !errors.Is(err, client.ErrNotFound) {
				r.Result, r.Error = "failed", err.Error()
			}
			deleted = append(deleted, r)
		}
		rounds()
	}
	out := make([]pushResult, 0, len(results)+len(deleted))
	for _, m := range mods {
		out = append(out, *results[m.Name])
	}
	return append(out, deleted...), nil
}

func (o *options) policyTestCommand() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run a directory's Rego tests here, as the server compiles policies (no server or key)",
		Long: `Run the Rego tests of DIR (test_ rules of its *_test.rego files, with every *.rego file
below it) with OPA's test runner, the way the server compiles policies: Rego v1, and
without the builtins policies may not call (http.send, net.lookup_ip_addr,
opa.runtime, numbers.range, numbers.range_step, net.cidr_expand). It needs no server
and no API key.

It prints failed tests, every test with -v, and a summary; it exits 1 when a test
fails, or a module does not compile (FILE:LINE:COLUMN).`,
		Example: "  terratask policies test deployments/policies -v",
		Args:    exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, failed, err := policy.Test(cmd.Context(), args[0], verbose, o.env.Stdout)
			if err != nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
			if failed > 0 {
				return &ExitError{Code: ExitFailed}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every test, passed ones too")
	return cmd
}

func (o *options) policyEvaluateCommand() *cobra.Command {
	var stage, taskFile, planFile, with string
	cmd := &cobra.Command{
		Use:   "evaluate --stage pre_plan|post_plan --task FILE [--plan FILE] [--with DIR]",
		Short: "Dry-run the org's policies (or a directory's drafts) for a task that is not created",
		Long: `Evaluate the org's policies for a task that is not created, as the control plane would
for this key's task: --task is a create body as "terratask tasks create -f" takes it (JSON,
- reads stdin); for --stage post_plan, --plan is Terraform's JSON plan
(terraform show -json PLANFILE). --with DIR sends DIR's policies (as push reads them) as
drafts, in place of the org's policies of the same names and beside the others.

It prints the decision (allow, require_approval, deny, or error) and every message; the
exit status is 0 whatever the decision, 1 only when the request fails (drafts that do
not compile: FILE:LINE:COLUMN).`,
		Example: `  terratask policies evaluate --stage pre_plan --task task.json
  terraform show -json tfplan > plan.json
  terratask policies evaluate --stage post_plan --task task.json --plan plan.json --with deployments/policies`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case stage != task.PolicyPrePlan && stage != task.PolicyPostPlan:
				return usage("--stage %q: want pre_plan or post_plan", stage)
			case taskFile == "":
				return usage("--task FILE is required: a task as \"terratask tasks create -f\" takes it")
			case stage == task.PolicyPostPlan && planFile == "":
				return usage("--stage post_plan needs --plan FILE: Terraform's JSON plan (terraform show -json)")
			case stage == task.PolicyPrePlan && planFile != "":
				return usage("--plan is for --stage post_plan")
			case taskFile == "-" && planFile == "-":
				return usage("--task and --plan cannot both read stdin")
			}
			req := api.EvaluatePolicyRequest{Stage: stage}
			var err error
			if req.Task, err = o.readJSONObject("--task", taskFile); err != nil {
				return err
			}
			if planFile != "" {
				if req.Plan, err = o.readJSONObject("--plan", planFile); err != nil {
					return err
				}
			}
			paths := map[string]string{}
			if with != "" {
				mods, err := policy.LoadDir(with)
				if err != nil {
					return &ExitError{Code: ExitFailed, Err: err}
				}
				if len(mods) == 0 {
					return &ExitError{Code: ExitFailed, Err: fmt.Errorf("--with %s: no policies in it", with)}
				}
				req.Policies = map[string]string{}
				for _, m := range mods {
					req.Policies[m.Name] = m.Rego
					paths[m.Name] = m.Path
				}
			}
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			out, err := c.EvaluatePolicies(cmd.Context(), req)
			if err != nil {
				return policyFailure(err, paths)
			}
			if asJSON {
				return printJSON(o.env.Stdout, out)
			}
			return printEvaluation(o.env.Stdout, out, paths)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&stage, "stage", "", "pre_plan (the task alone) or post_plan (the task and its plan)")
	fs.StringVar(&taskFile, "task", "", "the task: a JSON create body (- reads stdin)")
	fs.StringVar(&planFile, "plan", "", "for post_plan: Terraform's JSON plan, terraform show -json (- reads stdin)")
	fs.StringVar(&with, "with", "", "a directory of policies evaluated as drafts in place of the org's of the same names")
	return cmd
}

// printEvaluation shows a dry run: its decision, the policies evaluated and
// each message.
func printEvaluation(w io.Writer, out api.EvaluatePolicyResponse, drafts map[string]string) error {
	refs := make([]string, 0, len(out.Policies))
	for _, p := range out.Policies {
		refs = append(refs, p.Name+" "+policyVersion(p.Name, p.Version, drafts))
	}
	kv := [][2]string{{"Decision", out.Decision}, {"Stage", out.Stage}, {"Policies", dash(strings.Join(refs, ", "))}}
	if out.Error != "" {
		kv = append(kv, [2]string{"Error", sanitize(out.Error)})
	}
	if err := fields(w, kv); err != nil {
		return err
	}
	if len(out.Results) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(out.Results))
	for _, r := range out.Results {
		rows = append(rows, []string{r.Policy, policyVersion(r.Policy, r.Version, drafts), r.Rule, sanitize(r.Message)})
	}
	return table(w, []string{"POLICY", "VERSION", "RULE", "MESSAGE"}, rows)
}

// policyVersion renders the version of a result: "v2", or "draft" for a
// policy sent with --with.
func policyVersion(name string, version int, drafts map[string]string) string {
	if _, ok := drafts[name]; ok || version == 0 {
		return "draft"
	}
	return fmt.Sprintf("v%d", version)
}

// policyFailure is a failed call that may be ErrPolicyInvalid: its problems
// listed one a line, FILE:LINE:COLUMN, for the policies of paths.
func policyFailure(err error, paths map[string]string) error {
	return apiFailure(policyError(err, paths))
}

// policyError rewrites an ErrPolicyInvalid error (from the API, or a
// *policy.CompileError) as its problems, one a line, each at its file.
func policyError(err error, paths map[string]string) error {
	var problems []api.PolicyProblem
	var ce *policy.CompileError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			problems = append(problems, api.PolicyProblem(p))
		}
	} else {
		problems = client.Problems(err)
	}
	if len(problems) == 0 {
		return err
	}
	var b strings.Builder
	b.WriteString("the policies do not compile:")
	for _, p := range problems {
		file, ok := paths[p.Policy]
		if !ok {
			file = policy.FileName(p.Policy)
		}
		fmt.Fprintf(&b, "\n  %s:%d:%d: %s", file, p.Line, p.Column, sanitize(p.Message))
	}
	return errors.New(b.String())
}

// readFile reads a file, or stdin for "-".
func (o *options) readFile(name string) (string, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(o.env.Stdin, 64<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return "", usage("%v", err)
	}
	return string(b), nil
}

// readJSONObject reads a file (or stdin) that must hold a JSON object.
func (o *options) readJSONObject(flag, name string) (json.RawMessage, error) {
	text, err := o.readFile(name)
	if err != nil {
		return nil, usage("%s: %v", flag, errors.Unwrap(err))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &obj); err != nil || obj == nil {
		return nil, usage("%s %s: not a JSON object", flag, name)
	}
	return json.RawMessage(text), nil
}

// shortSHA is a digest's first 12 characters.
func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// dash renders an optional string.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
