package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
	"golang.org/x/oauth2/google"
)

const (
	testRoleARN     = "arn:aws:iam::123456789012:role/terratask-deploy"
	testGCPProvider = "projects/123456789012/locations/global/workloadIdentityPools/terratask/providers/terratask-prod"
	testGCPAccount  = "deployer@my-project.iam.gserviceaccount.com"
	testAzureClient = "11111111-2222-3333-4444-555555555555"
	testAzureTenant = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

// mintFor mints a step token for p's audience and writes it at path, as
// the runner will.
func mintFor(t *testing.T, p ProviderConfig, path string) string {
	t.Helper()
	e := newEnv(t, "")
	c := stepClaims()
	c.Audience = p.TokenAudience()
	token, _ := e.mint(c)
	if err := WriteTokenFile(path, token); err != nil {
		t.Fatal(err)
	}
	return token
}

// setEnv sets env for the rest of the test, and unsets the variables
// through which the machine's own credentials could be found.
func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL",
	} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_REGION", "eu-west-1")
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// TestAWSReadsTheToken: the environment ProviderFiles gives an aws set is
// what the AWS SDK for Go v2's default chain reads (the names of the AWS
// SDKs and Tools Reference Guide, "Assume role credential provider":
// AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME): its
// AssumeRoleWithWebIdentity call, sent to a stand-in for STS, carries the
// role, the session name and the token from the file.
func TestAWSReadsTheToken(t *testing.T) {
	ctx := context.Background()
	tokenPath := filepath.Join(t.TempDir(), "token")
	p := ProviderConfig{Provider: ProviderAWS, AWSRoleARN: testRoleARN, SessionName: SessionName("task-0001")}
	files, env, err := ProviderFiles(p, tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{
		"AWS_WEB_IDENTITY_TOKEN_FILE": tokenPath,
		"AWS_ROLE_ARN":                testRoleARN,
		"AWS_ROLE_SESSION_NAME":       "terratask-task-0001",
		"TERRATASK_OIDC_TOKEN_FILE":   tokenPath,
	}
	if len(files) != 0 || !maps.Equal(env, wantEnv) {
		t.Fatalf("ProviderFiles(aws) = %v, %v; want no files and %v", files, env, wantEnv)
	}
	if aud := p.TokenAudience(); aud != "sts.amazonaws.com" {
		t.Errorf("AWS default audience %q", aud)
	}
	token := mintFor(t, p, tokenPath)

	var (
		mu  sync.Mutex
		got map[string]string
	)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = map[string]string{}
		for k := range r.PostForm {
			got[k] = r.PostForm.Get(k)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>sub</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/terratask-deploy/terratask-task-0001</Arn>
      <AssumedRoleId>AROAEXAMPLE:terratask-task-0001</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAFAKESTSKEY</AccessKeyId>
      <SecretAccessKey>fake-secret</SecretAccessKey>
      <SessionToken>fake-session</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`)
	}))
	t.Cleanup(sts.Close)
	env["AWS_ENDPOINT_URL_STS"] = sts.URL
	setEnv(t, env)

	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("the AWS SDK's credentials: %v", err)
	}
	if creds.AccessKeyID != "ASIAFAKESTSKEY" {
		t.Errorf("credentials %q, want those of the web identity exchange", creds.AccessKeyID)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range map[string]string{
		"Action": "AssumeRoleWithWebIdentity", "RoleArn": testRoleARN, "RoleSessionName": "terratask-task-0001",
		"WebIdentityToken": token,
	} {
		if got[k] != v {
			t.Errorf("STS request %s = %q, want %q", k, got[k], v)
		}
	}
}

// TestGCPReadsTheToken: the external_account file ProviderFiles writes is
// accepted by golang.org/x/oauth2/google (the Go client libraries'
// parser, no network), and, pointed at stand-ins for STS and IAM
// Credentials, its token source reads the token file and exchanges it as
// Google documents (the audience of the file, a JWT subject token), then
// impersonates the service account.
func TestGCPReadsTheToken(t *testing.T) {
	ctx := context.Background()
	tokenPath := filepath.Join(t.TempDir(), "token")
	credPath := filepath.Join(filepath.Dir(tokenPath), GCPCredentialsFile)
	for _, sa := range []string{testGCPAccount, ""} {
		p := ProviderConfig{Provider: ProviderGCP, GCPWorkloadProvider: testGCPProvider, GCPServiceAccount: sa}
		files, env, err := ProviderFiles(p, tokenPath)
		if err != nil {
			t.Fatal(err)
		}
		wantEnv := map[string]string{
			"GOOGLE_APPLICATION_CREDENTIALS":         credPath,
			"CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE": credPath,
			"TERRATASK_OIDC_TOKEN_FILE":              tokenPath,
		}
		if !maps.Equal(env, wantEnv) || len(files) != 1 || files[credPath] == nil {
			t.Fatalf("ProviderFiles(gcp) = %v, %v", slices.Collect(maps.Keys(files)), env)
		}
		var file map[string]any
		if err := json.Unmarshal(files[credPath], &file); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"type":               "external_account",
			"audience":           "//iam.googleapis.com/" + testGCPProvider,
			"subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
			"token_url":          "https://sts.googleapis.com/v1/token",
			"credential_source":  map[string]any{"file": tokenPath, "format": map[string]any{"type": "text"}},
		}
		if sa != "" {
			want["service_account_impersonation_url"] = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/" + sa + ":generateAccessToken"
		}
		if fmt.Sprint(file) != fmt.Sprint(want) {
			t.Errorf("GCP file:\n got %v\nwant %v", file, want)
		}
		if aud := p.TokenAudience(); aud != "https://iam.googleapis.com/"+testGCPProvider {
			t.Errorf("GCP default audience %q", aud)
		}
		if _, err := google.CredentialsFromJSONWithType(ctx, files[credPath], google.ExternalAccount,
			"https://www.googleapis.com/auth/cloud-platform"); err != nil {
			t.Fatalf("google.CredentialsFromJSONWithType: %v", err)
		}

		token := mintFor(t, p, tokenPath)
		var (
			mu          sync.Mutex
			exchanged   map[string]string
			impersonate string
		)
		sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			mu.Lock()
			exchanged = map[string]string{}
			for k := range r.PostForm {
				exchanged[k] = r.PostForm.Get(k)
			}
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"federated-token","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}`)
		}))
		t.Cleanup(sts.Close)
		iam := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			impersonate = r.URL.Path + " " + r.Header.Get("Authorization")
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"accessToken":"service-account-token","expireTime":"2099-01-01T00:00:00Z"}`)
		}))
		t.Cleanup(iam.Close)
		file["token_url"] = sts.URL + "/v1/token"
		if sa != "" {
			file["service_account_impersonation_url"] = iam.URL + "/v1/projects/-/serviceAccounts/" + sa + ":generateAccessToken"
		}
		local, _ := json.Marshal(file)
		creds, err := google.CredentialsFromJSONWithType(ctx, local, google.ExternalAccount, "https://www.googleapis.com/auth/cloud-platform")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := creds.TokenSource.Token()
		if err != nil {
			t.Fatalf("the Google token source: %v", err)
		}
		mu.Lock()
		for k, v := range map[string]string{
			"grant_type":           "urn:ietf:params:oauth:grant-type:token-exchange",
			"audience":             "//iam.googleapis.com/" + testGCPProvider,
			"subject_token_type":   "urn:ietf:params:oauth:token-type:jwt",
			"requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
			"subject_token":        token,
		} {
			if exchanged[k] != v {
				t.Errorf("service account %q: STS exchange %s = %q, want %q", sa, k, exchanged[k], v)
			}
		}
		wantToken, wantImp := "federated-token", ""
		if sa != "" {
			wantToken = "service-account-token"
			wantImp = "/v1/projects/-/serviceAccounts/" + sa + ":generateAccessToken Bearer federated-token"
		}
		if tok.AccessToken != wantToken || impersonate != wantImp {
			t.Errorf("service account %q: access token %q, impersonation %q; want %q, %q", sa, tok.AccessToken, impersonate, wantToken, wantImp)
		}
		mu.Unlock()
	}
}

// TestAzureEnv: an azure set gets the variables of the Terraform azurerm
// provider's OIDC authentication (its documentation, "Authenticating
// using a Service Principal with Open ID Connect": ARM_USE_OIDC,
// ARM_OIDC_TOKEN_FILE_PATH, ARM_CLIENT_ID, ARM_TENANT_ID) and of the Azure
// SDKs' WorkloadIdentityCredential (azidentity: AZURE_FEDERATED_TOKEN_FILE,
// AZURE_CLIENT_ID, AZURE_TENANT_ID); no Go SDK that reads them is in the
// module graph, so the names are checked against those documents.
func TestAzureEnv(t *testing.T) {
	tokenPath := "/sandbox/.terratask/oidc/token"
	p := ProviderConfig{Provider: ProviderAzure, AzureClientID: testAzureClient, AzureTenantID: testAzureTenant}
	files, env, err := ProviderFiles(p, tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ARM_USE_OIDC":               "true",
		"ARM_OIDC_TOKEN_FILE_PATH":   tokenPath,
		"ARM_CLIENT_ID":              testAzureClient,
		"ARM_TENANT_ID":              testAzureTenant,
		"AZURE_FEDERATED_TOKEN_FILE": tokenPath,
		"AZURE_CLIENT_ID":            testAzureClient,
		"AZURE_TENANT_ID":            testAzureTenant,
		"TERRATASK_OIDC_TOKEN_FILE":  tokenPath,
	}
	if len(files) != 0 || !maps.Equal(env, want) {
		t.Errorf("ProviderFiles(azure) = %v, %v; want %v", files, env, want)
	}
	if aud := p.TokenAudience(); aud != "api://AzureADTokenExchange" {
		t.Errorf("Azure default audience %q", aud)
	}
	g := ProviderConfig{Provider: ProviderGeneric, Audience: "https://vault.example.com"}
	files, env, err = ProviderFiles(g, tokenPath)
	if err != nil || len(files) != 0 || !maps.Equal(env, map[string]string{"TERRATASK_OIDC_TOKEN_FILE": tokenPath}) {
		t.Errorf("ProviderFiles(generic) = %v, %v, %v", files, env, err)
	}
	if g.TokenAudience() != "https://vault.example.com" {
		t.Errorf("generic audience %q", g.TokenAudience())
	}
	a := ProviderConfig{Provider: ProviderAWS, AWSRoleARN: testRoleARN, Audience: "custom"}
	if a.TokenAudience() != "custom" {
		t.Errorf("a set's audience is not the token's: %q", a.TokenAudience())
	}
}

// TestProviderConfigJSON: the JSON of a ProviderConfig is the set's oidc
// object of the design ("Credentials" in DESIGN.md).
func TestProviderConfigJSON(t *testing.T) {
	var p ProviderConfig
	in := `{"provider":"gcp","audience":"a","gcp_workload_provider":"` + testGCPProvider + `","gcp_service_account":"` + testGCPAccount + `"}`
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if p.Provider != "gcp" || p.Audience != "a" || p.GCPWorkloadProvider != testGCPProvider || p.GCPServiceAccount != testGCPAccount {
		t.Errorf("decoded %+v", p)
	}
	p.SessionName = "not-json"
	out, _ := json.Marshal(p)
	if string(out) != in {
		t.Errorf("encoded %s, want %s", out, in)
	}
}

// TestProviderValidate: what each provider requires, with errors that
// name the field.
func TestProviderValidate(t *testing.T) {
	good := []ProviderConfig{
		{Provider: "aws", AWSRoleARN: testRoleARN},
		{Provider: "aws", AWSRoleARN: "arn:aws-us-gov:iam::123456789012:role/path/to/role", SessionName: "ab"},
		{Provider: "gcp", GCPWorkloadProvider: testGCPProvider},
		{Provider: "gcp", GCPWorkloadProvider: "//iam.googleapis.com/" + testGCPProvider, GCPServiceAccount: testGCPAccount},
		{Provider: "gcp", GCPWorkloadProvider: "https://iam.googleapis.com/" + testGCPProvider},
		{Provider: "azure", AzureClientID: testAzureClient, AzureTenantID: testAzureTenant, Audience: "api://custom"},
		{Provider: "generic", Audience: "https://vault.example.com"},
	}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", p, err)
		}
	}
	for _, c := range []struct {
		p    ProviderConfig
		want string
	}{
		{ProviderConfig{}, "provider is required"},
		{ProviderConfig{Provider: "ibm"}, `provider "ibm"`},
		{ProviderConfig{Provider: "aws"}, "aws_role_arn"},
		{ProviderConfig{Provider: "aws", AWSRoleARN: "arn:aws:iam::1234:role/x"}, "aws_role_arn"},
		{ProviderConfig{Provider: "aws", AWSRoleARN: "arn:aws:iam::123456789012:user/x"}, "aws_role_arn"},
		{ProviderConfig{Provider: "aws", AWSRoleARN: testRoleARN, SessionName: "a b"}, "session name"},
		{ProviderConfig{Provider: "aws", AWSRoleARN: testRoleARN, AzureClientID: testAzureClient}, "azure_client_id is not a field"},
		{ProviderConfig{Provider: "gcp"}, "gcp_workload_provider"},
		{ProviderConfig{Provider: "gcp", GCPWorkloadProvider: "projects/my-project/locations/global/workloadIdentityPools/p/providers/q"}, "project number"},
		{ProviderConfig{Provider: "gcp", GCPWorkloadProvider: testGCPProvider, GCPServiceAccount: "me@gmail.com"}, "gcp_service_account"},
		{ProviderConfig{Provider: "azure", AzureTenantID: testAzureTenant}, "azure_client_id"},
		{ProviderConfig{Provider: "azure", AzureClientID: testAzureClient, AzureTenantID: "contoso.onmicrosoft.com"}, "azure_tenant_id"},
		{ProviderConfig{Provider: "generic"}, "audience"},
		{ProviderConfig{Provider: "generic", Audience: "a b"}, "audience"},
		{ProviderConfig{Provider: "generic", Audience: "x", AWSRoleARN: testRoleARN}, "aws_role_arn is not a field"},
	} {
		err := c.p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error with %q", c.p, err, c.want)
		}
		if _, _, err := ProviderFiles(c.p, "/t/token"); err == nil {
			t.Errorf("ProviderFiles(%+v) succeeded", c.p)
		}
	}
	for _, path := range []string{"token", "/a/../token", "/sandbox/" + GCPCredentialsFile} {
		p := ProviderConfig{Provider: "gcp", GCPWorkloadProvider: testGCPProvider}
		if _, _, err := ProviderFiles(p, path); err == nil {
			t.Errorf("ProviderFiles(token path %q) succeeded", path)
		}
	}
	for id, want := range map[string]string{
		"task-1":                 "terratask-task-1",
		"a b/c:d":                "terratask-a_b_c_d",
		strings.Repeat("x", 100): "terratask-" + strings.Repeat("x", 54),
	} {
		if got := SessionName(id); got != want || !awsSessionNamePattern.MatchString(got) {
			t.Errorf("SessionName(%q) = %q, want %q", id, got, want)
		}
	}
}
