package server

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/task"
)

func TestParseCreateSeedExample(t *testing.T) {
	req, err := parseCreate([]byte(`{
	  "name": "Deploy Application",
	  "description": "Deploy application to production environment",
	  "agent_id": "agent-456",
	  "runner_id": "runner-789",
	  "metadata": {"environment": "production", "version": "1.2.0", "priority": "high"},
	  "parameters": {"app_name": "my-app", "deploy_strategy": "rolling"}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Name != "Deploy Application" || req.AgentID != "agent-456" || req.RunnerID != "runner-789" {
		t.Fatalf("%+v", req)
	}
	if req.Params.Variables["app_name"] != "my-app" || req.Params.Variables["deploy_strategy"] != "rolling" {
		t.Fatalf("non-reserved parameters must become variables: %+v", req.Params.Variables)
	}
	if req.Params.EffectiveAction() != task.ActionApply || req.Metadata["priority"] != "high" {
		t.Fatalf("%+v", req)
	}
}

func TestParseCreateAllParameters(t *testing.T) {
	req, err := parseCreate([]byte(`{"name":"n","agent_id":"a","runner_id":"r","parameters":{
	  "action":"destroy","files":{"main.tf":"x"},"variables":{"v":1},"sensitive_variables":{"token":"s3cret"},
	  "env":{"AWS_SECRET_ACCESS_KEY":"k","TF_VAR_x":"y"},"workspace":"prod-eu","terraform_version":"1.11.4",
	  "targets":["terraform_data.a"],"replace":["module.m.terraform_data.b[0]"],"refresh_only":false,
	  "parallelism":4,"timeout":"30m","extra":[1,2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	p := req.Params
	if p.Action != task.ActionDestroy || p.Files["main.tf"] != "x" || p.Workspace != "prod-eu" || p.TerraformVersion != "1.11.4" ||
		len(p.Targets) != 1 || len(p.Replace) != 1 || p.Parallelism != 4 || time.Duration(p.Timeout) != 30*time.Minute {
		t.Fatalf("%+v", p)
	}
	if _, ok := p.Variables["extra"]; !ok {
		t.Fatalf("extra variable missing: %+v", p.Variables)
	}
	if req.Secrets.SensitiveVariables["token"] != "s3cret" || req.Secrets.Env["AWS_SECRET_ACCESS_KEY"] != "k" {
		t.Fatalf("secrets %+v", req.Secrets)
	}
	if _, leaked := p.Variables["token"]; leaked {
		t.Fatal("sensitive variable copied to plain variables")
	}
}

func TestParseCreateRejects(t *testing.T) {
	base := `"agent_id":"a","runner_id":"r"`
	cases := []struct {
		body, field string
	}{
		{``, "body"},
		{`[]`, "body"},
		{`{"name":"x"`, "body"},
		{`{"name":"x",` + base + `} {}`, "body"},
		{`null`, "body"},
		{`{` + base + `}`, "name"},
		{`{"name":"",` + base + `}`, "name"},
		{`{"name":"   ",` + base + `}`, "name"},
		{`{"name":5,` + base + `}`, "name"},
		{`{"name":"` + strings.Repeat("n", 300) + `",` + base + `}`, "name"},
		{`{"name":"x","runner_id":"r"}`, "agent_id"},
		{`{"name":"x","agent_id":"a b","runner_id":"r"}`, "agent_id"},
		{`{"name":"x","agent_id":"a"}`, "runner_id"},
		{`{"name":"x","agent_id":"a","runner_id":"../r"}`, "runner_id"},
		{`{"name":"x",` + base + `,"description":7}`, "description"},
		{`{"name":"x",` + base + `,"metadata":[1]}`, "metadata"},
		{`{"name":"x",` + base + `,"parameters":"p"}`, "parameters"},
		{`{"name":"x",` + base + `,"bogus":1}`, "bogus"},
		{`{"name":"x",` + base + `,"parameters":{"action":"nuke"}}`, "parameters.action"},
		{`{"name":"x",` + base + `,"parameters":{"module":"../etc"}}`, "parameters.module"},
		{`{"name":"x",` + base + `,"parameters":{"files":{"../main.tf":"x"}}}`, "parameters.files.../main.tf"},
		{`{"name":"x",` + base + `,"parameters":{"files":{"a/b.tf":"x"}}}`, "parameters.files.a/b.tf"},
		{`{"name":"x",` + base + `,"parameters":{"files":{".hidden.tf":"x"}}}`, "parameters.files..hidden.tf"},
		{`{"name":"x",` + base + `,"parameters":{"files":{"main.tf":1}}}`, "parameters.files"},
		{`{"name":"x",` + base + `,"parameters":{"files":{"main.tf":"x"},"module":"m"}}`, "parameters"},
		{`{"name":"x",` + base + `,"parameters":{"env":{"TF_CLI_CONFIG_FILE":"/x"}}}`, "parameters.env.TF_CLI_CONFIG_FILE"},
		{`{"name":"x",` + base + `,"parameters":{"env":{"A":1}}}`, "parameters.env"},
		{`{"name":"x",` + base + `,"parameters":{"workspace":"a/b"}}`, "parameters.workspace"},
		{`{"name":"x",` + base + `,"parameters":{"terraform_version":"latest"}}`, "parameters.terraform_version"},
		{`{"name":"x",` + base + `,"parameters":{"targets":"a"}}`, "parameters.targets"},
		{`{"name":"x",` + base + `,"parameters":{"targets":["-destroy"]}}`, "parameters.targets"},
		{`{"name":"x",` + base + `,"parameters":{"refresh_only":"yes"}}`, "parameters.refresh_only"},
		{`{"name":"x",` + base + `,"parameters":{"parallelism":0}}`, "parameters.parallelism"},
		{`{"name":"x",` + base + `,"parameters":{"parallelism":1.5}}`, "parameters.parallelism"},
		{`{"name":"x",` + base + `,"parameters":{"timeout":"forever"}}`, "parameters.timeout"},
		{`{"name":"x",` + base + `,"parameters":{"timeout":"100h"}}`, "parameters.timeout"},
		{`{"name":"x",` + base + `,"parameters":{"bad-name!":1}}`, "parameters.bad-name!"},
		{`{"name":"x",` + base + `,"parameters":{"v":1,"variables":{"v":2}}}`, "parameters.variables.v"},
		{`{"name":"x",` + base + `,"parameters":{"variables":{"t":1},"sensitive_variables":{"t":"s"}}}`, "parameters.sensitive_variables.t"},
	}
	for _, c := range cases {
		_, err := parseCreate([]byte(c.body))
		var fe *fieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: want a field error, got %v", c.body, err)
			continue
		}
		if fe.Field != c.field {
			t.Errorf("%s: field %q, want %q (%s)", c.body, fe.Field, c.field, fe.Message)
		}
	}
}

func TestParseCreateNeverEchoesSecretValues(t *testing.T) {
	_, err := parseCreate([]byte(`{"name":"x","agent_id":"a","runner_id":"r","parameters":{"env":{"GOOD":"s3cret","bad name":"s3cret"}}}`))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v", err)
	}
}

func TestParseListQuery(t *testing.T) {
	lq, err := parseListQuery(url.Values{"status": {"running,failed"}, "limit": {"10"}, "page": {"3"}, "sort": {"status"}, "order": {"asc"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lq.Status) != 2 || lq.Limit != 10 || lq.Offset != 20 || lq.Sort != "status" || lq.Descending {
		t.Fatalf("%+v", lq)
	}
	def, _ := parseListQuery(url.Values{})
	if def.Limit != 50 || def.Page != 1 || !def.Descending || def.Sort != "created_at" {
		t.Fatalf("defaults %+v", def)
	}
	for q, field := range map[string]string{
		"limit=0": "limit", "limit=1001": "limit", "limit=x": "limit", "page=0": "page", "page=-1": "page",
		"sort=name": "sort", "order=up": "order", "status=done": "status", "agent=a%20b": "agent",
		"runner=..": "runner", "foo=1": "foo", "limit=1&limit=2": "limit",
	} {
		v, _ := url.ParseQuery(q)
		_, err := parseListQuery(v)
		var fe *fieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v, want field %s", q, err, field)
		}
	}
}

func TestParseLogQuery(t *testing.T) {
	lq, err := parseLogQuery(url.Values{"level": {"warn,ERROR,warn"}, "start_time": {"2026-01-01T00:00:00Z"}, "limit": {"5"}, "cursor": {"42"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lq.Levels) != 2 || lq.Since == nil || lq.Limit != 5 || lq.AfterID != 42 {
		t.Fatalf("%+v", lq)
	}
	for q, field := range map[string]string{
		"level=fatal": "level", "start_time=yesterday": "start_time", "end_time=1": "end_time",
		"start_time=2026-01-02T00:00:00Z&end_time=2026-01-01T00:00:00Z": "end_time",
		"limit=0": "limit", "cursor=-1": "cursor", "x=1": "x",
	} {
		v, _ := url.ParseQuery(q)
		_, err := parseLogQuery(v)
		var fe *fieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v, want field %s", q, err, field)
		}
	}
}
