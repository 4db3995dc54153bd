package oidc

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// The providers a credential set's oidc block may name.
const (
	ProviderAWS     = "aws"
	ProviderGCP     = "gcp"
	ProviderAzure   = "azure"
	ProviderGeneric = "generic"
)

// Default audiences (the token's aud) when a ProviderConfig sets none.
const (
	// AWSAudience is what AWS IAM expects of a web identity token by
	// convention: add it as a "client ID" (audience) of the IAM OIDC
	// identity provider.
	AWSAudience = "sts.amazonaws.com"
	// AzureAudience is the audience Microsoft Entra recommends for a
	// federated identity credential.
	AzureAudience = "api://AzureADTokenExchange"
	// GCP's default is "https://iam.googleapis.com/" + the workload
	// identity pool provider's resource name: what a provider with no
	// allowed audiences accepts ("the full canonical resource name of the
	// provider, with or without the HTTPS prefix").
	gcpAudiencePrefix = "https://iam.googleapis.com/"
)

// GCP's endpoints and token type of an external_account credential file
// (https://google.aip.dev/auth/4117).
const (
	GCPTokenURL         = "https://sts.googleapis.com/v1/token"
	GCPSubjectTokenType = "urn:ietf:params:oauth:token-type:jwt"
	gcpIAMPrefix        = "//iam.googleapis.com/"
	gcpImpersonationURL = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/%s:generateAccessToken"
)

// GCPCredentialsFile is the name of the external_account file ProviderFiles
// writes next to the token file.
const GCPCredentialsFile = "gcp-credentials.json"

// Environment variables ProviderFiles sets, by the names the SDKs and
// Terraform providers read.
const (
	// AWS SDKs' assume-role-with-web-identity provider (AWS SDKs and Tools
	// Reference Guide, "Assume role credential provider"; read by every
	// AWS SDK, hence by the Terraform AWS provider).
	EnvAWSWebIdentityTokenFile = "AWS_WEB_IDENTITY_TOKEN_FILE"
	EnvAWSRoleARN              = "AWS_ROLE_ARN"
	EnvAWSRoleSessionName      = "AWS_ROLE_SESSION_NAME"
	// Application Default Credentials (Google Cloud "How Application
	// Default Credentials works"): the Terraform Google provider and the
	// client libraries read the file it names. gcloud reads its property
	// auth/credential_file_override from CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE
	// (gcloud maps property section/name to CLOUDSDK_SECTION_NAME).
	EnvGoogleApplicationCredentials = "GOOGLE_APPLICATION_CREDENTIALS"
	EnvCloudSDKCredentialFile       = "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"
	// The Terraform azurerm (and azuread, azapi) provider's OIDC
	// authentication ("Authenticating using a Service Principal with Open
	// ID Connect": use_oidc, oidc_token_file_path, client_id, tenant_id).
	EnvARMUseOIDC           = "ARM_USE_OIDC"
	EnvARMOIDCTokenFilePath = "ARM_OIDC_TOKEN_FILE_PATH"
	EnvARMClientID          = "ARM_CLIENT_ID"
	EnvARMTenantID          = "ARM_TENANT_ID"
	// The Azure SDKs' WorkloadIdentityCredential (azidentity), for the az
	// CLI and tools built on the SDKs.
	EnvAzureFederatedTokenFile = "AZURE_FEDERATED_TOKEN_FILE"
	EnvAzureClientID           = "AZURE_CLIENT_ID"
	EnvAzureTenantID           = "AZURE_TENANT_ID"
	// EnvTokenFile names the token file for any tool: set for every
	// provider.
	EnvTokenFile = "TERRATASK_OIDC_TOKEN_FILE"
)

// ProviderConfig is the oidc block of a credential set: which cloud reads
// the token and how. Its JSON is the set's "oidc" object.
type ProviderConfig struct {
	// Provider is "aws", "gcp", "azure" or "generic".
	Provider string `json:"provider"`
	// Audience is the token's aud; empty means the provider's default
	// (TokenAudience). Required for generic.
	Audience string `json:"audience,omitempty"`
	// AWSRoleARN is the role to assume (aws, required).
	AWSRoleARN string `json:"aws_role_arn,omitempty"`
	// GCPWorkloadProvider is the workload identity pool provider's
	// resource name, projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>
	// (gcp, required; a "//iam.googleapis.com/" or
	// "https://iam.googleapis.com/" prefix is accepted and dropped).
	GCPWorkloadProvider string `json:"gcp_workload_provider,omitempty"`
	// GCPServiceAccount is the service account to impersonate (gcp,
	// optional: without it the federated identity itself is granted
	// access).
	GCPServiceAccount string `json:"gcp_service_account,omitempty"`
	// AzureClientID and AzureTenantID name the app registration or
	// managed identity holding the federated credential (azure,
	// required, GUIDs).
	AzureClientID string `json:"azure_client_id,omitempty"`
	AzureTenantID string `json:"azure_tenant_id,omitempty"`
	// SessionName is the AWS role session name of one task's step, set
	// by the runner (see SessionName): not part of the set.
	SessionName string `json:"-"`
}

var (
	awsRoleARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
	awsSessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	gcpProviderPattern    = regexp.MustCompile(`^projects/[0-9]+/locations/[a-z0-9-]+/workloadIdentityPools/[a-z0-9][a-z0-9-]*/providers/[a-z0-9][a-z0-9-]*$`)
	gcpServiceAcctPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*@[a-z0-9][a-z0-9.-]*\.gserviceaccount\.com$`)
	guidPattern           = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// gcpProvider returns the workload identity pool provider's resource name
// without a "//iam.googleapis.com/" or "https://iam.googleapis.com/"
// prefix.
func (p ProviderConfig) gcpProvider() string {
	name := p.GCPWorkloadProvider
	for _, prefix := range []string{gcpIAMPrefix, gcpAudiencePrefix} {
		name = strings.TrimPrefix(name, prefix)
	}
	return name
}

// TokenAudience returns the token's aud: Audience, or the provider's
// default (AWS "sts.amazonaws.com", Azure "api://AzureADTokenExchange",
// GCP "https://iam.googleapis.com/" + the provider's resource name; none
// for generic).
func (p ProviderConfig) TokenAudience() string {
	if p.Audience != "" {
		return p.Audience
	}
	switch p.Provider {
	case ProviderAWS:
		return AWSAudience
	case ProviderAzure:
		return AzureAudience
	case ProviderGCP:
		return gcpAudiencePrefix + p.gcpProvider()
	}
	return ""
}

// Validate returns an error naming the first field p lacks or holds
// wrongly, and each field another provider's (a set is one provider's).
func (p ProviderConfig) Validate() error {
	set := map[string]string{
		"aws_role_arn": p.AWSRoleARN, "gcp_workload_provider": p.GCPWorkloadProvider,
		"gcp_service_account": p.GCPServiceAccount, "azure_client_id": p.AzureClientID,
		"azure_tenant_id": p.AzureTenantID,
	}
	var own []string
	switch p.Provider {
	case ProviderAWS:
		own = []string{"aws_role_arn"}
		if !awsRoleARNPattern.MatchString(p.AWSRoleARN) {
			return fmt.Errorf("oidc: aws_role_arn %q: must be an IAM role ARN, arn:aws:iam::<12-digit account>:role/<name>", p.AWSRoleARN)
		}
		if p.SessionName != "" && !awsSessionNamePattern.MatchString(p.SessionName) {
			return fmt.Errorf("oidc: AWS role session name %q: 2 to 64 of letters, digits and +=,.@_-", p.SessionName)
		}
	case ProviderGCP:
		own = []string{"gcp_workload_provider", "gcp_service_account"}
		if !gcpProviderPattern.MatchString(p.gcpProvider()) {
			return fmt.Errorf("oidc: gcp_workload_provider %q: must be projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>", p.GCPWorkloadProvider)
		}
		if p.GCPServiceAccount != "" && !gcpServiceAcctPattern.MatchString(p.GCPServiceAccount) {
			return fmt.Errorf("oidc: gcp_service_account %q: must be a service account's email, <name>@<project>.iam.gserviceaccount.com", p.GCPServiceAccount)
		}
	case ProviderAzure:
		own = []string{"azure_client_id", "azure_tenant_id"}
		if !guidPattern.MatchString(p.AzureClientID) {
			return fmt.Errorf("oidc: azure_client_id %q: must be the application (client) ID, a GUID", p.AzureClientID)
		}
		if !guidPattern.MatchString(p.AzureTenantID) {
			return fmt.Errorf("oidc: azure_tenant_id %q: must be the directory (tenant) ID, a GUID", p.AzureTenantID)
		}
	case ProviderGeneric:
		if p.Audience == "" {
			return errors.New("oidc: a generic provider needs an audience")
		}
	case "":
		return errors.New(`oidc: provider is required: "aws", "gcp", "azure" or "generic"`)
	default:
		return fmt.Errorf(`oidc: provider %q: must be "aws", "gcp", "azure" or "generic"`, p.Provider)
	}
	for _, name := range own {
		delete(set, name)
	}
	for _, name := range []string{"aws_role_arn", "gcp_workload_provider", "gcp_service_account", "azure_client_id", "azure_tenant_id"} {
		if set[name] != "" {
			return fmt.Errorf("oidc: %s is not a field of provider %q", name, p.Provider)
		}
	}
	return checkClaim("audience", p.TokenAudience(), false)
}

// SessionName returns an AWS role session name for a task's step,
// "terratask-<task ID>", with the characters AWS refuses replaced by '_'
// and cut to AWS's 64.
func SessionName(taskID string) string {
	b := []byte("terratask-" + taskID)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("+=,.@_-", c) >= 0) {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), 64)])
}

// gcpCredentials is an external_account credential configuration file
// (https://google.aip.dev/auth/4117), as gcloud iam
// workload-identity-pools create-cred-config writes it.
type gcpCredentials struct {
	Type                           string              `json:"type"`
	Audience                       string              `json:"audience"`
	SubjectTokenType               string              `json:"subject_token_type"`
	TokenURL                       string              `json:"token_url"`
	CredentialSource               gcpCredentialSource `json:"credential_source"`
	ServiceAccountImpersonationURL string              `json:"service_account_impersonation_url,omitempty"`
}

type gcpCredentialSource struct {
	File   string `json:"file"`
	Format struct {
		Type string `json:"type"`
	} `json:"format"`
}

// ProviderFiles returns what a step's sandbox needs for the cloud of p to
// read the token the runner writes at tokenPath (an absolute path, as the
// step's processes see it): files to write, by path (next to tokenPath),
// and environment variables to set.
//
//   - aws: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN and, when p.SessionName
//     is set, AWS_ROLE_SESSION_NAME;
//   - gcp: an external_account file, GCPCredentialsFile next to the token
//     (audience //iam.googleapis.com/<provider>, token type JWT, the STS
//     token URL, the token file as credential_source and, with a service
//     account, its impersonation URL), named by
//     GOOGLE_APPLICATION_CREDENTIALS and CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE;
//   - azure: ARM_USE_OIDC=true, ARM_OIDC_TOKEN_FILE_PATH, ARM_CLIENT_ID,
//     ARM_TENANT_ID, and the Azure SDKs' AZURE_FEDERATED_TOKEN_FILE,
//     AZURE_CLIENT_ID, AZURE_TENANT_ID;
//   - generic: nothing of its own.
//
// Every provider also gets TERRATASK_OIDC_TOKEN_FILE. The token itself is
// not among the files (see WriteTokenFile and Refresher).
func ProviderFiles(p ProviderConfig, tokenPath string) (map[string][]byte, map[string]string, error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	if !filepath.IsAbs(tokenPath) || filepath.Clean(tokenPath) != tokenPath {
		return nil, nil, fmt.Errorf("oidc: token path %q: must be absolute and clean", tokenPath)
	}
	files := map[string][]byte{}
	env := map[string]string{EnvTokenFile: tokenPath}
	switch p.Provider {
	case ProviderAWS:
		env[EnvAWSWebIdentityTokenFile] = tokenPath
		env[EnvAWSRoleARN] = p.AWSRoleARN
		if p.SessionName != "" {
			env[EnvAWSRoleSessionName] = p.SessionName
		}
	case ProviderGCP:
		c := gcpCredentials{
			Type:             "external_account",
			Audience:         gcpIAMPrefix + p.gcpProvider(),
			SubjectTokenType: GCPSubjectTokenType,
			TokenURL:         GCPTokenURL,
			CredentialSource: gcpCredentialSource{File: tokenPath},
		}
		c.CredentialSource.Format.Type = "text"
		if p.GCPServiceAccount != "" {
			c.ServiceAccountImpersonationURL = fmt.Sprintf(gcpImpersonationURL, p.GCPServiceAccount)
		}
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return nil, nil, fmt.Errorf("oidc: encoding the GCP credentials: %w", err)
		}
		path := filepath.Join(filepath.Dir(tokenPath), GCPCredentialsFile)
		if path == tokenPath {
			return nil, nil, fmt.Errorf("oidc: token path %q: is the GCP credentials file's", tokenPath)
		}
		files[path] = append(b, '\n')
		env[EnvGoogleApplicationCredentials] = path
		env[EnvCloudSDKCredentialFile] = path
	case ProviderAzure:
		env[EnvARMUseOIDC] = "true"
		env[EnvARMOIDCTokenFilePath] = tokenPath
		env[EnvARMClientID] = p.AzureClientID
		env[EnvARMTenantID] = p.AzureTenantID
		env[EnvAzureFederatedTokenFile] = tokenPath
		env[EnvAzureClientID] = p.AzureClientID
		env[EnvAzureTenantID] = p.AzureTenantID
	}
	return files, env, nil
}
