package api

// CredentialSet is one of an org's credential sets as the API shows it
// (GET, PUT /api/v1/credential-sets/{name}): the names of its env vars and
// sensitive variables, never their values, and who may use it.
type CredentialSet struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// EnvNames and SensitiveVariableNames name the set's values (sorted).
	EnvNames               []string `json:"env_names"`
	SensitiveVariableNames []string `json:"sensitive_variable_names"`
	// Agents, Workspaces and Runners are glob lists (Go's path.Match:
	// *, ?, [a-z], \ escapes) of the task agents, workspaces and runner
	// IDs the set serves; an empty list matches any.
	Agents     []string `json:"agents"`
	Workspaces []string `json:"workspaces"`
	Runners    []string `json:"runners"`
	// Attach makes the set apply to every task whose workspace matches
	// Workspaces (and whose agent and runner match), without the task
	// naming it.
	Attach bool            `json:"attach"`
	OIDC   *CredentialOIDC `json:"oidc,omitempty"`
	// CreatedBy and UpdatedBy are the keys that wrote the set first and
	// last.
	CreatedBy string `json:"created_by"`
	CreatedAt string `json:"created_at"`
	UpdatedBy string `json:"updated_by"`
	UpdatedAt string `json:"updated_at"`
}

// CredentialSetList is GET /api/v1/credential-sets: the org's sets by name.
type CredentialSetList struct {
	CredentialSets []CredentialSet `json:"credential_sets"`
}

// PutCredentialSetRequest is the body of PUT
// /api/v1/credential-sets/{name}, which creates or replaces the set. Env
// and SensitiveVariables are write-only: nil (absent or null in the JSON)
// keeps the stored values (none for a new set), an object replaces them
// ({} removes them). Every other field is replaced by what the body says.
// An env TF_VAR_NAME is Terraform's variable NAME: the runner passes it in
// the var file, as a sensitive variable (a string).
type PutCredentialSetRequest struct {
	// Name, when given, must be the path's.
	Name               string            `json:"name,omitempty"`
	Description        string            `json:"description,omitempty"`
	Env                map[string]string `json:"env"`
	SensitiveVariables map[string]any    `json:"sensitive_variables"`
	Agents             []string          `json:"agents,omitempty"`
	Workspaces         []string          `json:"workspaces,omitempty"`
	Runners            []string          `json:"runners,omitempty"`
	Attach             bool              `json:"attach,omitempty"`
	OIDC               *CredentialOIDC   `json:"oidc,omitempty"`
}

// CredentialOIDC is a credential set's workload identity: each step of a
// task using the set gets a short-lived token of terratask's OIDC issuer
// for Audience, which Provider exchanges for its credentials. AWS needs
// AWSRoleARN; GCP GCPWorkloadProvider (and GCPServiceAccount to
// impersonate one); Azure AzureClientID and AzureTenantID; generic only an
// Audience. The API fills the providers' usual audiences when none is
// given.
type CredentialOIDC struct {
	// Provider is aws, gcp, azure or generic.
	Provider            string `json:"provider"`
	Audience            string `json:"audience,omitempty"`
	AWSRoleARN          string `json:"aws_role_arn,omitempty"`
	GCPWorkloadProvider string `json:"gcp_workload_provider,omitempty"`
	GCPServiceAccount   string `json:"gcp_service_account,omitempty"`
	AzureClientID       string `json:"azure_client_id,omitempty"`
	AzureTenantID       string `json:"azure_tenant_id,omitempty"`
}
