package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/terratask/terratask/internal/app"
	"github.com/terratask/terratask/internal/sandbox"
)

// The commands that run terratask's processes: dev, server and runner.

// notifyAllowHelp is the help of --notify-allow, a flag of dev and server.
const notifyAllowHelp = "host a task's notify URL may name (repeatable): a host or IP, host:port (that port only)\nor *.domain (its subdomains); default none: every notify parameter is refused"

// webhookAllowHelp is the help of --webhook-allow, a flag of dev and server.
const webhookAllowHelp = "host webhooks may reach although it is not public (repeatable; --notify-allow's syntax):\nby default a webhook URL whose host is or resolves to a loopback, private, link-local\n(cloud metadata), CGNAT, multicast or reserved address is refused"

// sourceAllowHelp is the help of --source-allow, a flag of dev, server and
// runner.
const sourceAllowHelp = "host a task's remote module source may name (repeatable; --notify-allow's syntax), e.g.\ngithub.com or registry.terraform.io (registry addresses without a host); default none:\nevery remote source (http(s)://, git::, s3::, gcs::, hg::, registry) is refused"

func devCommand(stdout, stderr io.Writer) *cobra.Command {
	var o app.DevOptions
	var runners, notifyAllow, webhookAllow, sourceAllow, tofuPaths, passEnv, policyDirs listFlag
	var logLevel, isolation string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: embedded Temporal (SQLite), Web UI, worker, local runners and the API",
		Long: `Run everything in one process: an embedded Temporal server persisted in SQLite under
--data-dir, the Temporal Web UI, the control-plane worker, local runners and the HTTP API.
Tasks in flight resume after a restart on the same data dir.

Without --runner, dev serves runner local and starts a local runner for any other
runner ID a task names, on demand; with --runner, it serves exactly those IDs.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, stdout); err != nil {
				return err
			}
			o.Runners = runners.vals
			o.NotifyAllow = notifyAllow.vals
			o.WebhookAllow = webhookAllow.vals
			o.SourceAllow = sourceAllow.vals
			o.TofuPaths = tofuPaths.vals
			o.PolicyDirs = policyDirs.vals
			var err error
			if o.Isolation, err = isolationOptions(isolation, passEnv.vals); err != nil {
				return usageError{err}
			}
			// Runner IDs on demand unless --runner was set (by flag,
			// environment or file): tests of offline runners rely on that.
			o.OnDemandRunners = !runners.set
			if o.KeysFile != "" || len(o.PolicyDirs) > 0 {
				// Only then does SIGHUP mean "reload" rather than its default.
				hup := make(chan os.Signal, 1)
				signal.Notify(hup, syscall.SIGHUP)
				defer signal.Stop(hup)
				o.Reload = hup
			}
			// The admin key comes from TERRATASK_API_KEY only: never a flag,
			// so it stays off command lines.
			o.APIKey = os.Getenv("TERRATASK_API_KEY")
			log, err := newLogger(logLevel, stderr)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			o.Logger, o.Out = log, stdout
			ctx, stop := signalContext()
			defer stop()
			return app.RunDev(ctx, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.DataDir, "data-dir", ".terratask", "directory for Temporal's SQLite file, the store, keys and runner work dirs")
	fs.StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:8080", "listen address of the HTTP API")
	httpFlags(fs, &o.HTTP)
	fs.StringVar(&o.TemporalAddr, "temporal-address", "127.0.0.1:7233", "listen address of the embedded Temporal frontend (gRPC)")
	fs.StringVar(&o.UIAddress, "ui-address", "127.0.0.1:8233", "listen address of the Temporal Web UI (empty: no UI)")
	fs.StringVar(&o.Namespace, "namespace", "default", "Temporal namespace")
	fs.Var(&runners, "runner", "runner ID served by this process for the admin key's org (repeatable; default local, and\nany other ID, of any org, on demand)")
	fs.IntVar(&o.MaxOnDemandRunners, "max-on-demand-runners", 8, "runners started on demand per org")
	fs.StringVar(&o.ModulesDir, "modules-dir", "", "module catalog for the module parameter (default DATA-DIR/modules)")
	fs.DurationVar(&o.RunnerWait, "runner-wait", 0, "how long a task waits for its runner before failing with runner_unavailable (default 24h)")
	fs.DurationVar(&o.ApprovalWait, "approval-timeout", 0, "how long a task's plan waits for approval when the task's approval_timeout says nothing;\nthen the task is rejected with approval_timeout (default 24h)")
	fs.IntVar(&o.StateVersions, "state-versions", 0, "Terraform state versions kept per workspace; older ones are pruned (0: keep all)")
	fs.DurationVar(&o.StopTimeout, "stop-timeout", 0, "grace for running steps at shutdown (default 5s)")
	fs.StringVar(&o.KeysFile, "api-keys-file", "", "optional API keys file (YAML or JSON, hashes only) whose keys are added next to the admin key; reloaded on SIGHUP")
	fs.StringVar(&o.OIDCIssuer, "oidc-issuer", "", "URL of this server as an OpenID Connect issuer (e.g. https://terratask.example.com): steps of tasks whose credential\nsets have oidc get short-lived tokens it signs, and it serves /.well-known/openid-configuration and jwks.json;\nunset, such sets fail their steps")
	opsFlags(fs, &o.MetricsAddress, &o.OldSecretKeysFile)
	fs.Var(&notifyAllow, "notify-allow", notifyAllowHelp)
	fs.Var(&webhookAllow, "webhook-allow", webhookAllowHelp)
	fs.Var(&sourceAllow, "source-allow", sourceAllowHelp)
	fs.Var(&tofuPaths, "tofu-path", tofuPathUsage)
	fs.Var(&policyDirs, "policy-dir", policyDirHelp)
	fs.StringVar(&o.CLIConfigFile, "terraform-cli-config", "", "Terraform/OpenTofu CLI config file the runners use, e.g. with a provider mirror (default: generated)")
	isolationFlags(fs, &isolation, &passEnv, "auto")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return configured(cmd)
}

// policyDirHelp is the help of --policy-dir, a flag of dev and server.
const policyDirHelp = "an org's policies kept in a directory, ORG=DIR (DIR alone: org default): every *.rego file\nbut *_test.rego, named by its path (aws/tags.rego: aws.tags); loaded at start and on SIGHUP (repeatable)"

const tofuPathUsage = "OpenTofu for tasks with engine opentofu, searched before PATH (repeatable): a tofu binary,\nor a directory holding tofu or one subdirectory per version (DIR/1.6.3/tofu)"

func serverCommand(stdout, stderr io.Writer) *cobra.Command {
	var o app.ServerOptions
	var codecOrigins listFlag
	var notifyAllow, webhookAllow, sourceAllow, policyDirs listFlag
	var secretFile, logLevel string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the HTTP API and control-plane worker against a Temporal cluster",
		Long: `Run the HTTP API and the control-plane worker against an existing Temporal cluster.
Any number of replicas may run behind a load balancer; they keep no state of their own.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, stdout); err != nil {
				return err
			}
			var err error
			if o.SecretKey, err = secretKey(secretFile); err != nil {
				return err
			}
			o.CodecOrigins = codecOrigins.vals
			o.Temporal.APIKey = os.Getenv("TERRATASK_TEMPORAL_API_KEY")
			o.NotifyAllow = notifyAllow.vals
			o.WebhookAllow = webhookAllow.vals
			o.SourceAllow = sourceAllow.vals
			o.PolicyDirs = policyDirs.vals
			log, err := newLogger(logLevel, stderr)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			o.Logger = log
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			o.Reload = hup
			ctx, stop := signalContext()
			defer stop()
			return app.RunServer(ctx, o)
		},
	}
	fs := cmd.Flags()
	temporalFlags(fs, &o.Temporal)
	fs.StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:8080", "listen address of the HTTP API")
	httpFlags(fs, &o.HTTP)
	fs.StringVar(&o.Store, "store", "", "store (required): postgres://USER@HOST:PORT/DB?sslmode=... (password in PGPASSWORD or\nTERRATASK_STORE), or a SQLite file path (sqlite://PATH) for a single host")
	fs.StringVar(&o.KeysFile, "api-keys-file", "", "API keys file (YAML or JSON, hashes only; required); reloaded on SIGHUP")
	fs.StringVar(&o.OIDCIssuer, "oidc-issuer", "", "URL of this server as an OpenID Connect issuer (e.g. https://terratask.example.com): steps of tasks whose credential\nsets have oidc get short-lived tokens it signs, and it serves /.well-known/openid-configuration and jwks.json;\nunset, such sets fail their steps")
	fs.StringVar(&secretFile, "secret-key-file", "", "file holding the base64 32-byte key that seals task secrets (or set TERRATASK_SECRET_KEY)")
	fs.DurationVar(&o.RunnerWait, "runner-wait", 0, "how long a task waits for its runner before failing with runner_unavailable (default 24h)")
	fs.DurationVar(&o.ApprovalWait, "approval-timeout", 0, "how long a task's plan waits for approval when the task's approval_timeout says nothing;\nthen the task is rejected with approval_timeout (default 24h)")
	fs.IntVar(&o.StateVersions, "state-versions", 0, "Terraform state versions kept per workspace; older ones are pruned (0: keep all)")
	fs.BoolVar(&o.SkipRegister, "skip-search-attributes", false, "do not register search attributes (when the key may not)")
	opsFlags(fs, &o.MetricsAddress, &o.OldSecretKeysFile)
	fs.Var(&codecOrigins, "codec-cors-origin", "browser origin of a Temporal Web UI allowed to call /api/v1/codec (CORS), e.g.\nhttps://temporal-ui.example.com (repeatable)")
	fs.Var(&notifyAllow, "notify-allow", notifyAllowHelp)
	fs.Var(&webhookAllow, "webhook-allow", webhookAllowHelp)
	fs.Var(&sourceAllow, "source-allow", sourceAllowHelp+"\n(runners check it too: give them the same list)")
	fs.Var(&policyDirs, "policy-dir", policyDirHelp)
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return configured(cmd)
}

func runnerCommand(stdout, stderr io.Writer) *cobra.Command {
	var o app.RunnerOptions
	var roots, sourceAllow, tofuPaths, passEnv listFlag
	var secretFile, logLevel, isolation string
	cmd := &cobra.Command{
		Use:   "runner",
		Short: "Run a runner that executes Terraform for tasks of one runner ID",
		Long: `Run a runner host that executes Terraform for tasks whose runner_id is --id.
Many processes on many hosts may share one ID.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, stdout); err != nil {
				return err
			}
			o.SourceRoots = roots.vals
			o.SourceAllow = sourceAllow.vals
			o.TofuPaths = tofuPaths.vals
			var err error
			if o.Isolation, err = isolationOptions(isolation, passEnv.vals); err != nil {
				return usageError{err}
			}
			if o.SecretKey, err = secretKey(secretFile); err != nil {
				return err
			}
			o.Temporal.APIKey = os.Getenv("TERRATASK_TEMPORAL_API_KEY")
			log, err := newLogger(logLevel, stderr)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			o.Logger = log
			ctx, stop := signalContext()
			defer stop()
			return app.RunRunner(ctx, o)
		},
	}
	fs := cmd.Flags()
	temporalFlags(fs, &o.Temporal)
	fs.StringVar(&o.ID, "id", "", "runner ID (required); runner IDs are per org")
	fs.StringVar(&o.Org, "org", "", "the org the runner belongs to (required): it runs that org's tasks only")
	fs.StringVar(&o.DataDir, "data-dir", ".terratask-runner", "work dirs, local state, plugin cache and Terraform installs")
	fs.StringVar(&o.ServerURL, "server-url", "", "base URL of a terratask server (http://server:8080): the runner writes task logs and plans\nthrough its runner API with a credential derived from the org key (required, unless --store)")
	fs.StringVar(&o.Store, "store", "", "instead of --server-url: the servers' store itself (postgres://... or a SQLite path); the runner\nhost then reaches every org's data: for single-org deployments only")
	fs.StringVar(&secretFile, "secret-key-file", "", "file holding the org's base64 32-byte key, which opens its task secrets and payloads\n(or set TERRATASK_SECRET_KEY); print it with: terratask keys org --org ORG")
	fs.StringVar(&o.ModulesDir, "modules-dir", "", "module catalog for the module parameter")
	fs.StringVar(&o.DefaultModule, "default-module", "", "module directory used when a task names no module, source or files")
	fs.StringVar(&o.StateURL, "state-url", "", "base URL of a terratask server (http://server:8080) whose HTTP state backend keeps\nthe Terraform state of modules without a backend of their own (default --server-url)")
	fs.StringVar(&o.StateDir, "state-dir", "", "without --state-url: local Terraform state per (org, workspace) (default DATA-DIR/state);\nshare it between hosts of one runner ID")
	fs.Var(&roots, "source-root", "directory under which local source paths are allowed (repeatable)")
	fs.Var(&sourceAllow, "source-allow", sourceAllowHelp+"\n(the servers check it too: give them the same list)")
	fs.DurationVar(&o.Grace, "grace", 0, "at SIGTERM, how long running steps may finish before they are handed back (default 30s)")
	opsFlags(fs, &o.MetricsAddress, &o.OldSecretKeysFile)
	fs.Var(&tofuPaths, "tofu-path", tofuPathUsage)
	fs.StringVar(&o.CLIConfigFile, "terraform-cli-config", "", "Terraform/OpenTofu CLI config file, e.g. with a provider mirror (default: generated in DATA-DIR)")
	isolationFlags(fs, &isolation, &passEnv, "strict")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return configured(cmd)
}

// isolationFlags are the task-code isolation flags of dev and runner.
func isolationFlags(fs *pflag.FlagSet, mode *string, passEnv *listFlag, def string) {
	fs.StringVar(mode, "isolation", def, "how task code (everything Terraform runs) is contained: strict (refuse to start without a\nsandbox), auto (sandbox when the host can, else warn), off (task code runs with this process's power)")
	fs.Var(passEnv, "pass-env", "runner environment variable task code may read, e.g. host cloud credentials (repeatable;\nNAME, or PREFIX* for every name with that prefix); with isolation on, task code gets no other")
}

func isolationOptions(mode string, passEnv []string) (app.IsolationOptions, error) {
	m, err := sandbox.ParseMode(mode)
	if err != nil {
		return app.IsolationOptions{}, fmt.Errorf("--isolation: %w", err)
	}
	return app.IsolationOptions{Mode: m, PassEnv: passEnv}, nil
}

// secretKey reads the secret key from a file, else TERRATASK_SECRET_KEY. It
// is never a flag value, so it stays off command lines.
func secretKey(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading --secret-key-file: %w", err)
		}
		return string(b), nil
	}
	return os.Getenv("TERRATASK_SECRET_KEY"), nil
}

// opsFlags are the metrics and key-rotation flags of dev, server and runner.
func opsFlags(fs *pflag.FlagSet, metricsAddr, oldKeys *string) {
	fs.StringVar(metricsAddr, "metrics-address", "", "serve Prometheus metrics at /metrics on this address (e.g. 0.0.0.0:9090); empty: dev and\nserver serve them on the API's /metrics, a runner serves none")
	fs.StringVar(oldKeys, "old-secret-keys-file", "", "file of secret keys from before a rotation (one base64 key a line), still accepted to\ndecrypt Temporal payloads, task secrets and stored state")
}
