package server

import (
	"errors"
	"testing"

	"github.com/terratask/terratask/task"
)

func TestParseCreateEngine(t *testing.T) {
	base := `{"name":"x","agent_id":"a","runner_id":"r","parameters":`
	req, err := parseCreate([]byte(base + `{"engine":"opentofu","tofu_version":"1.6.3"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Params.Engine != task.EngineOpenTofu || req.Params.TofuVersion != "1.6.3" || req.Params.EffectiveVersion() != "1.6.3" {
		t.Fatalf("%+v", req.Params)
	}
	if _, ok := req.Params.Variables["engine"]; ok {
		t.Fatal("engine became a variable")
	}
	req, err = parseCreate([]byte(base + `{"terraform_version":"1.11.4"}}`))
	if err != nil || req.Params.EffectiveEngine() != task.EngineTerraform || req.Params.EffectiveVersion() != "1.11.4" {
		t.Fatalf("%+v %v", req, err)
	}
	for body, field := range map[string]string{
		`{"engine":"pulumi"}`:                                "parameters.engine",
		`{"engine":1}`:                                       "parameters.engine",
		`{"engine":"OpenTofu"}`:                              "parameters.engine",
		`{"engine":"opentofu","tofu_version":"~> 1.6"}`:      "parameters.tofu_version",
		`{"engine":"opentofu","tofu_version":"latest"}`:      "parameters.tofu_version",
		`{"tofu_version":"1.6.3"}`:                           "parameters.tofu_version",
		`{"engine":"terraform","tofu_version":"1.6.3"}`:      "parameters.tofu_version",
		`{"engine":"opentofu","terraform_version":"1.11.4"}`: "parameters.terraform_version",
		`{"env":{"TOFU_CLI_CONFIG_FILE":"/x"}}`:              "parameters.env.TOFU_CLI_CONFIG_FILE",
	} {
		_, err := parseCreate([]byte(base + body + `}`))
		var fe *fieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v, want field %s", body, err, field)
		}
	}
}

func TestParseCreateDrift(t *testing.T) {
	base := `{"name":"x","agent_id":"a","runner_id":"r","parameters":`
	req, err := parseCreate([]byte(base + `{"action":"plan","detect_drift":true,"workspace":"prod"}}`))
	if err != nil || !req.Params.DetectDrift {
		t.Fatalf("%+v %v", req, err)
	}
	req, err = parseCreate([]byte(base + `{"action":"plan","detect_drift":true,"remediate":"approval","workspace":"prod"}}`))
	var fe *fieldError
	switch {
	case !reservedParams["approval"]:
		// No plan approval on this server: a remediation would not wait.
		if !errors.As(err, &fe) || fe.Field != "parameters.remediate" {
			t.Fatalf("remediate without approval: %v", err)
		}
	case err != nil || req.Params.Remediate != task.RemediateApproval:
		t.Fatalf("%+v %v", req, err)
	}
	for body, field := range map[string]string{
		`{"detect_drift":true,"workspace":"prod"}`:                                     "parameters.detect_drift",
		`{"action":"apply","detect_drift":true,"workspace":"prod"}`:                    "parameters.detect_drift",
		`{"action":"plan","detect_drift":true}`:                                        "parameters.workspace",
		`{"action":"plan","detect_drift":"yes","workspace":"prod"}`:                    "parameters.detect_drift",
		`{"action":"plan","remediate":"approval","workspace":"prod"}`:                  "parameters.remediate",
		`{"action":"plan","detect_drift":true,"remediate":"auto","workspace":"prod"}`:  "parameters.remediate",
		`{"action":"plan","detect_drift":true,"refresh_only":true,"workspace":"prod"}`: "parameters.refresh_only",
	} {
		_, err := parseCreate([]byte(base + body + `}`))
		var fe *fieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v, want field %s", body, err, field)
		}
	}
}
