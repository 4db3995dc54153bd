package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/terratask/terratask/client"
)

// createFlags are the flags of `tasks create`.
type createFlags struct {
	filename                          string
	name, description, agent, runner  string
	metadata, vars, files, params     []string
	module, source, action, workspace string
	approval, timeout, idempotencyKey string
	wait                              bool
	waitTimeout                       time.Duration
}

func (o *options) createCommand() *cobra.Command { return o.createCommandWith(&createFlags{}) }

// createCommandWith binds the command's flags to f.
func (o *options) createCommandWith(f *createFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a task (from flags, or a create body with -f FILE or -f -)",
		Long: `Create a task. The body comes from -f (a JSON create body, as the API takes it; - reads
stdin), and the flags set or override its fields: --name, --agent (default cli),
--runner (default local), --metadata k=v; and its parameters: --var k=v (an input
variable), --file main.tf (inline configuration, repeatable; NAME=PATH renames),
--module, --source, --action, --workspace, --approval, --timeout, --param k=JSON (any
parameter). Secret variables (sensitive_variables, env) go in the -f body only, never
on a command line.

With --wait, the command shows the task's progress until it ends and exits 0 when it
completed, 1 when it failed, 3 when it was cancelled or its plan rejected, and 4 when
--wait-timeout passed first.`,
		Example: `  terratask tasks create --name hello --file main.tf --wait
  terratask tasks create -f task.json --wait
  echo '{"name":"seed","agent_id":"agent-456","runner_id":"runner-789"}' | terratask tasks create -f -`,
		Args: exactArgs(0, "no arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := o.json()
			if err != nil {
				return err
			}
			body, err := f.body(cmd, o.env.Stdin)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return usage("%v", err)
			}
			var opts []client.CreateOption
			if f.idempotencyKey != "" {
				opts = append(opts, client.IdempotencyKey(f.idempotencyKey))
			}
			t, err := c.CreateTaskJSON(cmd.Context(), body, opts...)
			if err != nil {
				return apiFailure(err)
			}
			if !f.wait {
				return o.printTask(t, asJSON)
			}
			fmt.Fprintf(o.env.Stderr, "created %s\n", t.ID)
			return o.waitFor(cmd.Context(), c, t.ID, f.waitTimeout, asJSON)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.filename, "filename", "f", "", "a JSON create body (- reads stdin)")
	fs.StringVar(&f.name, "name", "", "task name (required, here or in -f)")
	fs.StringVar(&f.description, "description", "", "task description")
	fs.StringVar(&f.agent, "agent", "", "agent ID (default cli)")
	fs.StringVar(&f.runner, "runner", "", "runner ID (default local)")
	fs.StringArrayVar(&f.metadata, "metadata", nil, "metadata key=value (repeatable)")
	fs.StringArrayVar(&f.vars, "var", nil, "input variable key=value (repeatable)")
	fs.StringArrayVar(&f.files, "file", nil, "a local file sent as inline configuration, PATH or NAME=PATH (repeatable)")
	fs.StringArrayVar(&f.params, "param", nil, "any parameter as key=JSON, e.g. targets=[\"terraform_data.x\"] (repeatable)")
	fs.StringVar(&f.module, "module", "", "module of the runner's catalog")
	fs.StringVar(&f.source, "source", "", "module source (terraform init -from-module)")
	fs.StringVar(&f.action, "action", "", "apply (default), plan or destroy")
	fs.StringVar(&f.workspace, "workspace", "", "workspace that names the Terraform state (default the task's ID)")
	fs.StringVar(&f.approval, "approval", "", "none (default), required or destructive: plans wait for a person")
	fs.StringVar(&f.timeout, "timeout", "", "bound on the run from pickup, e.g. 30m (the task's timeout parameter)")
	fs.StringVar(&f.idempotencyKey, "idempotency-key", "", "Idempotency-Key: the same key and body return the task created first")
	fs.BoolVar(&f.wait, "wait", false, "show the task's progress until it ends; the exit code says how it ended")
	fs.DurationVar(&f.waitTimeout, "wait-timeout", 0, "with --wait, give up waiting after this long (exit 4; the task goes on)")
	return cmd
}

// body builds the create body: -f's, with the flags laid over it.
func (f *createFlags) body(cmd *cobra.Command, stdin io.Reader) ([]byte, error) {
	body := map[string]any{}
	if f.filename != "" {
		var raw []byte
		var err error
		if f.filename == "-" {
			raw, err = io.ReadAll(io.LimitReader(stdin, 4<<20))
		} else {
			raw, err = os.ReadFile(f.filename)
		}
		if err != nil {
			return nil, usage("-f: %v", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // numbers pass through as written
		if err := dec.Decode(&body); err != nil || body == nil {
			return nil, usage("-f %s: not a JSON object: %v", f.filename, err)
		}
	}
	changed := cmd.Flags().Changed
	setString := func(key, flag, val, def string) {
		switch {
		case changed(flag):
			body[key] = val
		case body[key] == nil && def != "":
			body[key] = def
		}
	}
	setString("name", "name", f.name, "")
	setString("description", "description", f.description, "")
	setString("agent_id", "agent", f.agent, "cli")
	setString("runner_id", "runner", f.runner, "local")
	if _, ok := body["name"]; !ok {
		return nil, usage("--name is required (or name in the -f body)")
	}
	if err := mergeKV(body, "metadata", f.metadata, "--metadata"); err != nil {
		return nil, err
	}
	params, err := object(body, "parameters")
	if err != nil {
		return nil, err
	}
	if err := mergeKV(params, "variables", f.vars, "--var"); err != nil {
		return nil, err
	}
	if len(f.files) > 0 {
		files, err := object(params, "files")
		if err != nil {
			return nil, err
		}
		for _, spec := range f.files {
			name, path, ok := strings.Cut(spec, "=")
			if !ok {
				name, path = filepath.Base(spec), spec
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, usage("--file: %v", err)
			}
			files[name] = string(b)
		}
	}
	for flag, val := range map[string]string{"module": f.module, "source": f.source, "action": f.action, "workspace": f.workspace, "approval": f.approval, "timeout": f.timeout} {
		if changed(flag) {
			params[flag] = val
		}
	}
	for _, kv := range f.params {
		k, v, ok := strings.Cut(kv, "=")
		var val any
		if !ok || k == "" || json.Unmarshal([]byte(v), &val) != nil {
			return nil, usage("--param %q: want key=JSON, such as parallelism=4 or targets=[\"a.b\"]", k)
		}
		params[k] = val
	}
	if len(params) == 0 {
		delete(body, "parameters")
	}
	return json.Marshal(body)
}

// object returns m[key] as an object, creating it.
func object(m map[string]any, key string) (map[string]any, error) {
	switch v := m[key].(type) {
	case nil:
		o := map[string]any{}
		m[key] = o
		return o, nil
	case map[string]any:
		return v, nil
	default:
		return nil, usage("-f body: %s must be an object", key)
	}
}

// mergeKV sets key=value pairs into m[key].
func mergeKV(m map[string]any, key string, kvs []string, flag string) error {
	if len(kvs) == 0 {
		return nil
	}
	o, err := object(m, key)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usage("%s %q: want key=value", flag, kv)
		}
		o[k] = v
	}
	return nil
}
