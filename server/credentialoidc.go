package server

import (
	"regexp"
	"strings"

	"github.com/terratask/terratask/api"
)

// The oidc field of a credential set (issue 22): which cloud a step's OIDC
// token is for, and what that cloud needs to exchange it. The API checks
// the form of each field here and fills the providers' usual audiences;
// the runner hands the set's configuration to the step with its values.

// OIDC providers of a credential set.
const (
	oidcAWS     = "aws"
	oidcGCP     = "gcp"
	oidcAzure   = "azure"
	oidcGeneric = "generic"
)

// Default audiences: what each cloud's token exchange expects unless its
// trust is configured otherwise (AWS STS, Azure AD's federated
// credentials; GCP's is the workload identity provider's full resource
// name).
const (
	awsAudience   = "sts.amazonaws.com"
	azureAudience = "api://AzureADTokenExchange"
	gcpIAMPrefix  = "//iam.googleapis.com/"
)

var (
	audiencePattern    = regexp.MustCompile(`^[\x21-\x7e]{1,512}$`)
	awsRoleARNPattern  = regexp.MustCompile(`^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`)
	gcpProviderPattern = regexp.MustCompile(`^projects/[0-9]{1,20}/locations/global/workloadIdentityPools/[a-z0-9-]{4,32}/providers/[a-z0-9-]{4,32}$`)
	gcpAccountPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}@[a-z0-9][a-z0-9.-]{0,180}\.gserviceaccount\.com$`)
	guidPattern        = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// checkOIDC validates a set's oidc field and returns it as stored: the
// GCP provider without its //iam.googleapis.com/ prefix, the audience
// filled with the provider's usual one when none is given (generic has
// none: its audience is required).
func checkOIDC(o api.CredentialOIDC) (api.CredentialOIDC, error) {
	field := func(k string) string { return "oidc." + k }
	o.GCPWorkloadProvider = strings.TrimPrefix(o.GCPWorkloadProvider, gcpIAMPrefix)
	// Each provider's own fields, required (true) or allowed (false).
	own := map[string]map[string]bool{
		oidcAWS:     {"aws_role_arn": true},
		oidcGCP:     {"gcp_workload_provider": true, "gcp_service_account": false},
		oidcAzure:   {"azure_client_id": true, "azure_tenant_id": true},
		oidcGeneric: {},
	}[o.Provider]
	if own == nil {
		return o, errField(field("provider"), "must be aws, gcp, azure or generic")
	}
	values := map[string]string{
		"aws_role_arn": o.AWSRoleARN, "gcp_workload_provider": o.GCPWorkloadProvider, "gcp_service_account": o.GCPServiceAccount,
		"azure_client_id": o.AzureClientID, "azure_tenant_id": o.AzureTenantID,
	}
	for _, k := range sortedKeys(values) {
		required, ok := own[k]
		switch {
		case !ok && values[k] != "":
			return o, errField(field(k), "is not a field of provider %s", o.Provider)
		case required && values[k] == "":
			return o, errField(field(k), "is required with provider %s", o.Provider)
		}
	}
	switch {
	case o.AWSRoleARN != "" && !awsRoleARNPattern.MatchString(o.AWSRoleARN):
		return o, errField(field("aws_role_arn"), "must be an IAM role ARN such as arn:aws:iam::123456789012:role/terratask")
	case o.GCPWorkloadProvider != "" && !gcpProviderPattern.MatchString(o.GCPWorkloadProvider):
		return o, errField(field("gcp_workload_provider"), "must be a workload identity provider's resource name: projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER")
	case o.GCPServiceAccount != "" && !gcpAccountPattern.MatchString(o.GCPServiceAccount):
		return o, errField(field("gcp_service_account"), "must be a service account's email (NAME@PROJECT.iam.gserviceaccount.com)")
	case o.AzureClientID != "" && !guidPattern.MatchString(o.AzureClientID):
		return o, errField(field("azure_client_id"), "must be the application's client ID, a GUID")
	case o.AzureTenantID != "" && !guidPattern.MatchString(o.AzureTenantID):
		return o, errField(field("azure_tenant_id"), "must be the tenant's ID, a GUID")
	case o.Audience != "" && !audiencePattern.MatchString(o.Audience):
		return o, errField(field("audience"), "must be 1 to 512 printable characters without spaces")
	}
	if o.Audience == "" {
		switch o.Provider {
		case oidcAWS:
			o.Audience = awsAudience
		case oidcAzure:
			o.Audience = azureAudience
		case oidcGCP:
			o.Audience = gcpIAMPrefix + o.GCPWorkloadProvider
		default:
			return o, errField(field("audience"), "is required with provider generic: the audience your relying party expects")
		}
	}
	return o, nil
}
