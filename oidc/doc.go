// Package oidc makes terratask an OpenID Connect issuer for workload
// identity (issue 22): each plan or apply step of a task using an oidc
// credential set gets a short-lived token, signed by terratask, that AWS,
// GCP or Azure exchanges for cloud credentials, so no agent (and no runner
// host) holds long-lived cloud keys.
//
// # Issuer, discovery and JWKS
//
// An Issuer (New) has a URL, the --oidc-issuer of the server: every token's
// iss. Its Handler serves, publicly, the discovery document at
// <issuer>/.well-known/openid-configuration (issuer, jwks_uri,
// response_types_supported ["id_token"], subject_types_supported
// ["public"], id_token_signing_alg_values_supported ["RS256"],
// claims_supported, scopes_supported ["openid"]) and the public signing
// keys at <issuer>/.well-known/jwks.json (each with kid, "use": "sig",
// "alg": "RS256"; Cache-Control max-age 300, the discovery document 3600).
// Tokens are RS256, the one algorithm all three clouds accept (Azure
// accepts nothing else), typ JWT, with the signing key's kid in the
// header.
//
// # Tokens
//
// Mint signs the Claims of one step. A token's payload (TokenClaims):
//
//	{
//	  "iss": "https://terratask.example.com",
//	  "sub": "org:acme:workspace:prod:agent:deployer:run_phase:apply",
//	  "aud": "sts.amazonaws.com",
//	  "iat": 1767225600, "nbf": 1767225600, "exp": 1767227100,
//	  "jti": "KQ3TCMZ2G7HRVXGS4LWNBE5PJY",
//	  "terratask_org": "acme",
//	  "terratask_workspace": "prod",
//	  "terratask_agent": "deployer",
//	  "terratask_run_phase": "apply",
//	  "terratask_task_id": "task-7f3a...",
//	  "terratask_runner_id": "runner-eu-1",
//	  "terratask_key": "ci-deployer"
//	}
//
// aud is a single string (the set's audience, or the provider's default:
// see ProviderConfig.TokenAudience); nbf is iat; jti is 128 random bits,
// unique per token. A token lives Claims.TTL (the default 15 minutes when
// 0), at most MaxTTL (1 hour by default): the runner asks for StepTTL of
// the step's time limit (5 minutes longer than the step may run), and a
// step that may run longer than MaxTTL renews its token (Refresher).
//
// # The sub claim and trust policies
//
// sub is exactly
//
//	org:<org>:workspace:<workspace>:agent:<agent>:run_phase:<plan|apply>
//
// Org and agent IDs may hold ':' (terratask's IDs are ASCII letters,
// digits and ._:@+-), which would make the fields ambiguous, so each
// component is escaped: ':' becomes "%3A" (EscapeComponent), and '%' and
// every character outside that set are refused, so the escaping is
// unambiguous and no component holds a '*' or '?' that a trust policy
// would read as a wildcard. Org "acme:eu" and agent "bot@ci" give
// "org:acme%3Aeu:workspace:prod:agent:bot@ci:run_phase:plan". A task on
// a workspace of its own has an empty workspace
// ("org:acme:workspace::agent:..."). Subject computes a sub; the other
// claims repeat each field unescaped (terratask_org is "acme:eu").
//
// What to put in each cloud's trust policy, for issuer
// https://terratask.example.com:
//
//   - AWS: an IAM OIDC identity provider for the issuer with audience
//     (client ID) sts.amazonaws.com, and in the role's trust policy,
//     action sts:AssumeRoleWithWebIdentity, the conditions
//     "StringEquals": {"terratask.example.com:aud": "sts.amazonaws.com"}
//     and "StringLike": {"terratask.example.com:sub":
//     "org:acme:workspace:prod:agent:*:run_phase:apply"} (any agent's
//     applies on prod); "org:acme:workspace:*:agent:*:run_phase:plan"
//     (plans anywhere in acme); "org:acme:workspace:prod:agent:deployer:run_phase:*"
//     (one agent, both phases). AWS conditions test sub and aud of a
//     custom issuer, not its other claims, so sub carries every field.
//     Keep the ':' after a value: "org:acme:workspace:prod:*" is workspace
//     prod only, "org:acme:workspace:prod*" also prod-2.
//   - GCP: a workload identity pool OIDC provider with issuer URI the
//     issuer, allowed audiences empty (the token's default aud is then
//     https://iam.googleapis.com/<provider resource name>), attribute
//     mapping google.subject=assertion.sub,
//     attribute.org=assertion.terratask_org,
//     attribute.workspace=assertion.terratask_workspace,
//     attribute.agent=assertion.terratask_agent,
//     attribute.run_phase=assertion.terratask_run_phase, an attribute
//     condition such as assertion.terratask_org == "acme", and the grant
//     to principal://iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/subject/org:acme:workspace:prod:agent:deployer:run_phase:apply
//     or principalSet://iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/attribute.workspace/prod.
//     google.subject is limited to 127 bytes: with long IDs map it to
//     assertion.terratask_task_id and grant by attributes.
//   - Azure: a federated identity credential on the app registration (or
//     user-assigned managed identity) with issuer exactly the issuer URL,
//     audience api://AzureADTokenExchange and subject exactly one sub,
//     e.g. org:acme:workspace:prod:agent:deployer:run_phase:apply (Entra
//     matches subjects exactly: one credential per workspace, agent and
//     phase that may use it).
//
// # Signing keys and rotation
//
// Keys are RSA 2048, numbered by epoch, and live in the store
// (store.OIDCKeyStore, implemented by store/sqlite and store/postgres), so
// every server replica signs with the same key and a restart keeps them.
// The private key is stored only sealed by the control plane's Sealer (its
// *secret.Box), bound to its kid (the RFC 7638 thumbprint of the public
// key); it is opened only to sign and never logged or returned.
//
// With the defaults (Rotation 24h, PublishAhead 12h, MaxTTL 1h, Leeway
// 5m), a key is made and published 12 hours before it signs, signs for 24
// hours, and stays in the JWKS 1h05m after its successor takes over (its
// last token expires within MaxTTL of its retirement, plus Leeway for
// clocks); it is then dropped from the JWKS, and deleted from the store a
// rotation period later. So the JWKS holds the signing key, plus the next
// one in the 12 hours before a rotation and the retired one in the 65
// minutes after it: never more than two keys. The first key (empty store)
// signs at once. Keys change on a fixed 24-hour grid as long as a replica
// runs (and mints, serves the JWKS or calls Refresh) in the 12 hours
// before each rotation; after a longer downtime, the key that signed last
// signs on until the next, made then, has been published 12 hours: a key
// never signs before it has been published PublishAhead.
//
// Replicas make keys concurrently without coordination: each inserts the
// epoch it computed with INSERT ... ON CONFLICT DO NOTHING on the unique
// epoch, and all read back the one that won. Each replica rereads the keys
// every minute, so it knows a new key long before it signs.
//
// # Provider files
//
// ProviderFiles returns, for a ProviderConfig and the path of the token
// file in the step's sandbox, the files and environment the cloud's
// Terraform provider and SDKs read: AWS_WEB_IDENTITY_TOKEN_FILE and
// AWS_ROLE_ARN (and AWS_ROLE_SESSION_NAME); a GCP external_account file
// named by GOOGLE_APPLICATION_CREDENTIALS; ARM_USE_OIDC,
// ARM_OIDC_TOKEN_FILE_PATH, ARM_CLIENT_ID and ARM_TENANT_ID (and the Azure
// SDKs' AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID).
// WriteTokenFile replaces the token file atomically (0600), and Refresher
// rewrites it at two thirds of each token's life for steps that outlive
// it; SDKs reread the file when their cloud credentials expire.
package oidc
