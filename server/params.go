package server

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/task"
)

// createRequest is the body of POST /api/v1/tasks.
type createRequest struct {
	Name        string
	Description string
	AgentID     string
	RunnerID    string
	Metadata    map[string]any
	Params      task.Params
	Secrets     task.Secrets
	// CredentialSets are the credential sets the task uses, resolved
	// from Params.Credentials and the org's attached sets
	// (resolveCredentials); nil until then.
	CredentialSets []string
}

// Limits on create bodies.
const (
	maxNameLen        = 256
	maxDescriptionLen = 4096
	maxIDLen          = 128
	maxFiles          = 100
	maxFilesBytes     = 1 << 20
	maxSourceLen      = 2048
	maxListItems      = 1000
	// Limits on metadata: keys, a key's bytes, a value's bytes (compact
	// JSON).
	maxMetadataKeys       = 64
	maxMetadataKeyLen     = 128
	maxMetadataValueBytes = 1024
	// maxApprovalTimeout bounds approval_timeout (and the server's default).
	maxApprovalTimeout = 720 * time.Hour
)

var (
	idPattern        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]*$`)
	modulePattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	workspacePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,89}$`)
	versionPattern   = regexp.MustCompile(`^\d+\.\d+\.\d+(-[A-Za-z0-9.]+)?$`)
	varNamePattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,127}$`)
	envNamePattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	filePattern      = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\.(tf|tf\.json|tfvars|tfvars\.json|tpl|json|sh|txt|yaml|yml)$`)
	addressPattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\[\]"\-:/]{0,511}$`)
)

// reservedParams are the parameters terratask interprets; any other key of
// "parameters" is a Terraform input variable.
var reservedParams = map[string]bool{
	"action": true, "module": true, "source": true, "files": true, "variables": true,
	"sensitive_variables": true, "env": true, "workspace": true, "terraform_version": true,
	"targets": true, "replace": true, "refresh_only": true, "parallelism": true, "timeout": true,
	"runner_timeout": true, "notify": true, "approval": true, "approval_timeout": true,
	"engine": true, "tofu_version": true, "detect_drift": true, "remediate": true,
	"credentials": true,
}

// topLevelFields are the fields of a create body.
var topLevelFields = map[string]bool{
	"name": true, "description": true, "agent_id": true, "runner_id": true, "metadata": true, "parameters": true,
}

// parseCreate decodes and validates a create body. Errors are *fieldError
// with messages that never echo a parameter's value (it may be a secret).
func parseCreate(body []byte) (*createRequest, error) {
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return nil, errField("body", "request body must be a JSON object: %s", jsonProblem(err))
	}
	if raw == nil {
		return nil, errField("body", "request body must be a JSON object")
	}
	for _, k := range sortedKeys(raw) {
		if !topLevelFields[k] {
			name := k
			if name == "" {
				name = `""`
			}
			return nil, errField(name, "unknown field %q (allowed: name, description, agent_id, runner_id, metadata, parameters)", k)
		}
	}
	req := &createRequest{}
	var err error
	if req.Name, err = requiredString(raw, "name", maxNameLen); err != nil {
		return nil, err
	}
	if req.Description, err = optionalString(raw, "description", maxDescriptionLen); err != nil {
		return nil, err
	}
	if req.AgentID, err = requiredID(raw, "agent_id"); err != nil {
		return nil, err
	}
	if req.RunnerID, err = requiredID(raw, "runner_id"); err != nil {
		return nil, err
	}
	if m, ok := raw["metadata"]; ok && !isNull(m) {
		if req.Metadata, err = parseMetadata(m); err != nil {
			return nil, err
		}
	}
	if p, ok := raw["parameters"]; ok && !isNull(p) {
		var params map[string]json.RawMessage
		if err := decodeStrict(p, &params); err != nil || params == nil {
			return nil, errField("parameters", "must be a JSON object")
		}
		if err := parseParams(params, req); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// parseMetadata decodes a task's metadata: a JSON object of at most
// maxMetadataKeys keys of at most maxMetadataKeyLen bytes, each value at
// most maxMetadataValueBytes of compact JSON.
func parseMetadata(m json.RawMessage) (map[string]any, error) {
	var raw map[string]json.RawMessage
	if err := decodeStrict(m, &raw); err != nil || raw == nil {
		return nil, errField("metadata", "must be a JSON object")
	}
	if len(raw) > maxMetadataKeys {
		return nil, errField("metadata", "at most %d keys", maxMetadataKeys)
	}
	var buf bytes.Buffer
	for _, k := range sortedKeys(raw) {
		if len(k) > maxMetadataKeyLen {
			return nil, errField("metadata", "keys must be at most %d bytes", maxMetadataKeyLen)
		}
		buf.Reset()
		if err := json.Compact(&buf, raw[k]); err != nil {
			return nil, errField("metadata."+k, "must be a JSON value")
		}
		if buf.Len() > maxMetadataValueBytes {
			return nil, errField("metadata."+k, "must be at most %d bytes of JSON", maxMetadataValueBytes)
		}
	}
	var meta map[string]any
	if err := decodeStrict(m, &meta); err != nil || meta == nil {
		return nil, errField("metadata", "must be a JSON object")
	}
	return meta, nil
}

func parseParams(params map[string]json.RawMessage, req *createRequest) error {
	p := &req.Params
	field := func(k string) string { return "parameters." + k }
	for _, k := range sortedKeys(params) {
		v := params[k]
		if isNull(v) {
			continue
		}
		switch k {
		case "action":
			var s string
			if json.Unmarshal(v, &s) != nil {
				return errField(field(k), "must be a string: apply, plan or destroy")
			}
			switch task.Action(s) {
			case task.ActionApply, task.ActionPlan, task.ActionDestroy:
				p.Action = task.Action(s)
			default:
				return errField(field(k), "must be apply, plan or destroy")
			}
		case "module":
			if json.Unmarshal(v, &p.Module) != nil || !modulePattern.MatchString(p.Module) {
				return errField(field(k), "must be a module name of the runner's catalog (letters, digits, _ and -)")
			}
		case "source":
			if json.Unmarshal(v, &p.Source) != nil || p.Source == "" || len(p.Source) > maxSourceLen || strings.ContainsAny(p.Source, "\x00\n\r") {
				return errField(field(k), "must be a Terraform module source address of at most %d characters", maxSourceLen)
			}
		case "files":
			if err := decodeStrict(v, &p.Files); err != nil || p.Files == nil {
				return errField(field(k), "must be an object of file name to file content strings")
			}
			if len(p.Files) > maxFiles {
				return errField(field(k), "at most %d files", maxFiles)
			}
			total := 0
			for _, name := range sortedKeys(p.Files) {
				if !filePattern.MatchString(name) || strings.Contains(name, "..") {
					return errField(field(k)+"."+name, "file names must be plain names like main.tf (no directories, no leading dot; extensions .tf, .tf.json, .tfvars, .tpl, .json, .sh, .txt, .yaml)")
				}
				total += len(p.Files[name])
			}
			if total > maxFilesBytes {
				return errField(field(k), "files may hold at most %d bytes in all", maxFilesBytes)
			}
		case "variables":
			var vars map[string]any
			if err := decodeStrict(v, &vars); err != nil || vars == nil {
				return errField(field(k), "must be an object of variable name to value")
			}
			for _, name := range sortedKeys(vars) {
				if !varNamePattern.MatchString(name) {
					return errField(field(k)+"."+name, "is not a valid Terraform variable name")
				}
				if err := setVariable(p, name, vars[name], field(k)); err != nil {
					return err
				}
			}
		case "sensitive_variables":
			if err := decodeStrict(v, &req.Secrets.SensitiveVariables); err != nil || req.Secrets.SensitiveVariables == nil {
				return errField(field(k), "must be an object of variable name to value")
			}
			for _, name := range sortedKeys(req.Secrets.SensitiveVariables) {
				if !varNamePattern.MatchString(name) {
					return errField(field(k)+"."+name, "is not a valid Terraform variable name")
				}
			}
		case "env":
			if err := decodeStrict(v, &req.Secrets.Env); err != nil || req.Secrets.Env == nil {
				return errField(field(k), "must be an object of environment variable name to string value")
			}
			for _, name := range sortedKeys(req.Secrets.Env) {
				if err := checkEnvName(field(k)+"."+name, name); err != nil {
					return err
				}
			}
		case "credentials":
			names, err := parseCredentialNames(v)
			if err != nil {
				return err
			}
			p.Credentials = names
		case "workspace":
			if json.Unmarshal(v, &p.Workspace) != nil || !workspacePattern.MatchString(p.Workspace) {
				return errField(field(k), "must be 1-90 characters of letters, digits, ., _ and -, starting with a letter or digit")
			}
		case "terraform_version":
			if json.Unmarshal(v, &p.TerraformVersion) != nil || !versionPattern.MatchString(p.TerraformVersion) {
				return errField(field(k), "must be an exact version such as 1.11.4")
			}
		case "engine":
			var e string
			if json.Unmarshal(v, &e) != nil || !task.Engine(e).Valid() {
				return errField(field(k), "must be terraform or opentofu")
			}
			p.Engine = task.Engine(e)
		case "detect_drift", "remediate":
			if err := parseDriftParam(k, v, p); err != nil {
				return err
			}
		case "tofu_version":
			if json.Unmarshal(v, &p.TofuVersion) != nil || !versionPattern.MatchString(p.TofuVersion) {
				return errField(field(k), "must be an exact version such as 1.6.3")
			}
		case "targets", "replace":
			var addrs []string
			if json.Unmarshal(v, &addrs) != nil || len(addrs) > maxListItems {
				return errField(field(k), "must be an array of at most %d resource addresses", maxListItems)
			}
			for _, a := range addrs {
				if !addressPattern.MatchString(a) {
					return errField(field(k), "%q is not a resource address", a)
				}
			}
			if k == "targets" {
				p.Targets = addrs
			} else {
				p.Replace = addrs
			}
		case "refresh_only":
			if json.Unmarshal(v, &p.RefreshOnly) != nil {
				return errField(field(k), "must be a boolean")
			}
		case "parallelism":
			var n float64
			if json.Unmarshal(v, &n) != nil || n != float64(int(n)) || n < 1 || n > 256 {
				return errField(field(k), "must be an integer from 1 to 256")
			}
			p.Parallelism = int(n)
		case "approval":
			var a string
			if json.Unmarshal(v, &a) != nil || !task.Approval(a).Valid() || a == "" {
				return errField(field(k), "must be none, required or destructive")
			}
			p.Approval = task.Approval(a)
		case "approval_timeout":
			var s string
			if json.Unmarshal(v, &s) != nil {
				return errField(field(k), "must be a duration string such as \"4h\"")
			}
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second || d > maxApprovalTimeout {
				return errField(field(k), "must be a duration from 1s to 720h, such as \"4h\"")
			}
			p.ApprovalTimeout = task.Duration(d)
		case "timeout", "runner_timeout":
			var s string
			if json.Unmarshal(v, &s) != nil {
				return errField(field(k), "must be a duration string such as \"30m\"")
			}
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second || d > 72*time.Hour {
				return errField(field(k), "must be a duration from 1s to 72h, such as \"30m\"")
			}
			if k == "timeout" {
				p.Timeout = task.Duration(d)
			} else {
				p.RunnerTimeout = task.Duration(d)
			}
		case "notify":
			n, err := parseNotify(v)
			if err != nil {
				return err
			}
			p.Notify = n
		default:
			if !varNamePattern.MatchString(k) {
				return errField(field(k), "is neither a known parameter nor a valid Terraform variable name")
			}
			var val any
			if err := json.Unmarshal(v, &val); err != nil {
				return errField(field(k), "is not valid JSON")
			}
			if err := setVariable(p, k, val, "parameters"); err != nil {
				return err
			}
		}
	}
	sources := 0
	for _, set := range []bool{p.Module != "", p.Source != "", p.Files != nil} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		return errField("parameters", "give at most one of module, source and files")
	}
	if err := checkApproval(p); err != nil {
		return err
	}
	if err := checkEngineParams(p); err != nil {
		return err
	}
	if err := checkDriftParams(p); err != nil {
		return err
	}
	for name := range req.Secrets.SensitiveVariables {
		if _, dup := p.Variables[name]; dup {
			return errField("parameters.sensitive_variables."+name, "is also given as a plain variable")
		}
	}
	return nil
}

// checkEnvName checks the name of an environment variable a task's env,
// or a credential set's, gives the task's engine.
func checkEnvName(field, name string) error {
	if !envNamePattern.MatchString(name) {
		return errField(field, "is not a valid environment variable name")
	}
	if strings.HasPrefix(name, "TF_") && !strings.HasPrefix(name, "TF_VAR_") || strings.HasPrefix(name, "TOFU_") {
		return errField(field, "TF_ variables other than TF_VAR_, and OpenTofu's TOFU_ ones, are set by the runner")
	}
	return nil
}

// parseNotify validates the notify parameter, {"url": ..., "events": [...]}:
// its URL's form here, its host against the server's allow list at create.
func parseNotify(v json.RawMessage) (*task.Notify, error) {
	var raw map[string]json.RawMessage
	if err := decodeStrict(v, &raw); err != nil || raw == nil {
		return nil, errField("parameters.notify", "must be an object {\"url\": ..., \"events\": [...]}")
	}
	n := &task.Notify{}
	for _, k := range sortedKeys(raw) {
		switch k {
		case "url":
			if json.Unmarshal(raw[k], &n.URL) != nil {
				return nil, errField("parameters.notify.url", "must be a string")
			}
		case "events":
			if isNull(raw[k]) {
				continue
			}
			var names []string
			if json.Unmarshal(raw[k], &names) != nil {
				return nil, errField("parameters.notify.events", "must be an array of event types")
			}
			for _, name := range names {
				t := task.EventType(name)
				if !t.Valid() {
					return nil, errField("parameters.notify.events", "%q is not an event type", name)
				}
				n.Events = append(n.Events, t)
			}
		default:
			return nil, errField("parameters.notify."+k, "unknown field (allowed: url, events)")
		}
	}
	if _, err := events.CheckURL(n.URL); err != nil {
		return nil, errField("parameters.notify.url", "%s", err.Error())
	}
	return n, nil
}

func setVariable(p *task.Params, name string, val any, field string) error {
	if p.Variables == nil {
		p.Variables = map[string]any{}
	}
	if _, dup := p.Variables[name]; dup {
		return errField(field+"."+name, "variable %q is given twice (in variables and as a parameter)", name)
	}
	p.Variables[name] = val
	return nil
}

// checkApproval rejects approval parameters that cannot take effect: a
// plan-only task never applies, and approval_timeout needs a mode that
// waits.
func checkApproval(p *task.Params) error {
	mode := p.EffectiveApproval()
	if mode != task.ApprovalNone && p.EffectiveAction() == task.ActionPlan {
		return errField("parameters.approval", "a plan-only task (action plan) never applies, so its plan cannot wait for approval")
	}
	if p.ApprovalTimeout > 0 && mode == task.ApprovalNone {
		return errField("parameters.approval_timeout", "applies only with approval required or destructive")
	}
	return nil
}
