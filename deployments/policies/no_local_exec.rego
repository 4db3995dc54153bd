# no_local_exec: no task runs commands of its own on the runner host.
#
# Stages: pre_plan (the task's inline files) and post_plan (the plan's
# configuration).
#
# A local-exec provisioner runs a command on the runner host when the
# resource is applied, and an external data source (data "external") runs
# a program there during the plan: both step outside what Terraform's
# providers do and what a plan shows. This policy denies them:
#
#   - pre_plan, before any task code runs: in the task's inline files
#     (input.terratask.task.files; .tf, .tofu and the like read as HCL,
#     *.json as Terraform's JSON syntax), naming the file. Comments are
#     ignored; block labels may be quoted or bare (provisioner local-exec).
#   - post_plan, in the plan's configuration (every module of it, so also
#     for tasks from a module source or the runner's catalog, whose files
#     the task does not carry), naming the resource. A local-exec has not
#     run yet then (provisioners run at apply); an external data source of
#     such a task has already run during the plan, so a runner that must
#     never run one should only take tasks with inline files or modules it
#     trusts.
#
# Tune: to deny remote-exec too, add it to denied_provisioners; to allow
# these in a sandbox, add a condition to the deny rules, such as
# `input.terratask.task.workspace != "sandbox"`.
package terratask.no_local_exec

denied_provisioners := {"local-exec"}

# ---- pre_plan: the task's inline files ----

# hcl_files are the inline files read as HCL, their comments removed.
hcl_files[name] := text if {
	some name, content in input.terratask.task.files
	not endswith(name, ".json")
	text := regex.replace(regex.replace(content, `(?s)/\*.*?\*/`, ""), `(?m)(#|//).*$`, "")
}

# json_files are the inline files in Terraform's JSON syntax.
json_files[name] := doc if {
	some name, content in input.terratask.task.files
	endswith(name, ".json")
	doc := json.unmarshal(content)
}

deny contains sprintf("%s: a %s provisioner runs commands on the runner host; use a provider's resources instead", [name, p]) if {
	some name, text in hcl_files
	some p in denied_provisioners
	regex.match(sprintf(`\bprovisioner\s+"?%s"?\s*\{`, [p]), text)
}

deny contains sprintf("%s: a %s provisioner runs commands on the runner host; use a provider's resources instead", [name, p]) if {
	some name, doc in json_files
	some p in denied_provisioners
	walk(doc, [path, _])
	some i
	path[i] == "provisioner"
	p in array.slice(path, i + 1, i + 3)
}

deny contains sprintf("%s: an external data source runs a program on the runner host during the plan", [name]) if {
	some name, text in hcl_files
	regex.match(`\bdata\s+"?external"?\s+"?[A-Za-z_][A-Za-z0-9_-]*"?\s*\{`, text)
}

deny contains sprintf("%s: an external data source runs a program on the runner host during the plan", [name]) if {
	some name, doc in json_files
	is_object(doc.data.external)
}

# ---- post_plan: the plan's configuration ----

# config_resources are the configuration's resource blocks by their full
# address (module.net.null_resource.x).
config_resources[address] := r if {
	walk(input.configuration.root_module, [path, r])
	is_object(r)
	is_string(r.mode)
	is_string(r.address)
	modules := [sprintf("module.%s.", [path[i + 1]]) | some i; path[i] == "module_calls"]
	address := concat("", array.concat(modules, [r.address]))
}

deny contains sprintf("%s: a %s provisioner runs commands on the runner host; use a provider's resources instead", [address, p.type]) if {
	some address, r in config_resources
	some p in r.provisioners
	p.type in denied_provisioners
}

deny contains sprintf("%s: an external data source runs a program on the runner host", [address]) if {
	some address, r in config_resources
	r.mode == "data"
	r.type == "external"
}
