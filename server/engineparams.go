package server

import "github.com/terratask/terratask/task"

// checkEngineParams checks that a task's version pin fits its engine:
// tofu_version needs engine opentofu, terraform_version engine terraform.
func checkEngineParams(p *task.Params) error {
	switch engine := p.EffectiveEngine(); {
	case p.TofuVersion != "" && engine != task.EngineOpenTofu:
		return errField("parameters.tofu_version", "needs \"engine\": \"opentofu\"")
	case p.TerraformVersion != "" && engine != task.EngineTerraform:
		return errField("parameters.terraform_version", "pins Terraform; an OpenTofu task pins its version with tofu_version")
	}
	return nil
}
