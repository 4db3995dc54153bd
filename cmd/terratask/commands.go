package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/internal/app"
)

func runDev(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dev", "Run everything in one process: an embedded Temporal server persisted in SQLite under\n--data-dir, the Temporal Web UI, the control-plane worker, local runners and the HTTP API.\nTasks in flight resume after a restart on the same data dir.", stderr)
	var o app.DevOptions
	var runners listFlag
	fs.StringVar(&o.DataDir, "data-dir", ".terratask", "directory for Temporal's SQLite file, the store, keys and runner work dirs")
	fs.StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:8080", "listen address of the HTTP API")
	fs.StringVar(&o.TemporalAddr, "temporal-address", "127.0.0.1:7233", "listen address of the embedded Temporal frontend (gRPC)")
	fs.StringVar(&o.UIAddress, "ui-address", "127.0.0.1:8233", "listen address of the Temporal Web UI (empty: no UI)")
	fs.StringVar(&o.Namespace, "namespace", "default", "Temporal namespace")
	fs.Var(&runners, "runner", "runner ID served by this process (repeatable; default local)")
	fs.StringVar(&o.ModulesDir, "modules-dir", "", "module catalog for the module parameter (default DATA-DIR/modules)")
	fs.DurationVar(&o.RunnerWait, "runner-wait", 0, "how long a task waits for its runner before failing with runner_unavailable (default 24h)")
	fs.IntVar(&o.StateVersions, "state-versions", 0, "Terraform state versions kept per workspace; older ones are pruned (0: keep all)")
	fs.DurationVar(&o.StopTimeout, "stop-timeout", 0, "grace for running steps at shutdown (default 5s)")
	fs.StringVar(&o.KeysFile, "api-keys-file", "", "optional API keys file (YAML or JSON, hashes only) whose keys are added next to the admin key; reloaded on SIGHUP")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	addConfigFlags(fs)
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	o.Runners = runners.vals
	if o.KeysFile != "" {
		// Only then does SIGHUP mean "reload" rather than its default.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		o.Reload = hup
	}
	// The admin key comes from TERRATASK_API_KEY only: never a flag, so it
	// stays off command lines.
	o.APIKey = os.Getenv("TERRATASK_API_KEY")
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	o.Logger, o.Out = log, stdout
	ctx, stop := signalContext()
	defer stop()
	return app.RunDev(ctx, o)
}

func runServer(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("server", "Run the HTTP API and the control-plane worker against an existing Temporal cluster.\nAny number of replicas may run behind a load balancer; they keep no state of their own.", stderr)
	var o app.ServerOptions
	temporalFlags(fs, &o.Temporal)
	fs.StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:8080", "listen address of the HTTP API")
	fs.StringVar(&o.Store, "store", "", "store (required): postgres://USER@HOST:PORT/DB?sslmode=... (password in PGPASSWORD or\nTERRATASK_STORE), or a SQLite file path (sqlite://PATH) for a single host")
	fs.StringVar(&o.KeysFile, "api-keys-file", "", "API keys file (YAML or JSON, hashes only; required); reloaded on SIGHUP")
	secretFile := fs.String("secret-key-file", "", "file holding the base64 32-byte key that seals task secrets (or set TERRATASK_SECRET_KEY)")
	fs.DurationVar(&o.RunnerWait, "runner-wait", 0, "how long a task waits for its runner before failing with runner_unavailable (default 24h)")
	fs.IntVar(&o.StateVersions, "state-versions", 0, "Terraform state versions kept per workspace; older ones are pruned (0: keep all)")
	fs.BoolVar(&o.SkipRegister, "skip-search-attributes", false, "do not register search attributes (when the key may not)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	addConfigFlags(fs)
	var err error
	if err = parse(fs, args, stdout); err != nil {
		return err
	}
	if o.SecretKey, err = secretKey(*secretFile); err != nil {
		return err
	}
	o.Temporal.APIKey = os.Getenv("TERRATASK_TEMPORAL_API_KEY")
	log, err := newLogger(*logLevel, stderr)
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
}

func runRunner(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("runner", "Run a runner host that executes Terraform for tasks whose runner_id is --id.\nMany processes on many hosts may share one ID.", stderr)
	var o app.RunnerOptions
	var roots listFlag
	temporalFlags(fs, &o.Temporal)
	fs.StringVar(&o.ID, "id", "", "runner ID (required)")
	fs.StringVar(&o.DataDir, "data-dir", ".terratask-runner", "work dirs, local state, plugin cache and Terraform installs")
	fs.StringVar(&o.Store, "store", "", "store where the runner writes task logs (required): the servers' postgres://... DSN,\nor a SQLite file path")
	secretFile := fs.String("secret-key-file", "", "file holding the base64 32-byte key that opens task secrets (or set TERRATASK_SECRET_KEY)")
	fs.StringVar(&o.ModulesDir, "modules-dir", "", "module catalog for the module parameter")
	fs.StringVar(&o.DefaultModule, "default-module", "", "module directory used when a task names no module, source or files")
	fs.StringVar(&o.StateURL, "state-url", "", "base URL of a terratask server (http://server:8080) whose HTTP state backend keeps\nthe Terraform state of modules without a backend of their own; needs the servers' secret key")
	fs.StringVar(&o.StateDir, "state-dir", "", "without --state-url: local Terraform state per (org, workspace) (default DATA-DIR/state);\nshare it between hosts of one runner ID")
	fs.Var(&roots, "source-root", "directory under which local source paths are allowed (repeatable)")
	fs.DurationVar(&o.Grace, "grace", 0, "at SIGTERM, how long running steps may finish before they are handed back (default 30s)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	addConfigFlags(fs)
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	o.SourceRoots = roots.vals
	var err error
	if o.SecretKey, err = secretKey(*secretFile); err != nil {
		return err
	}
	o.Temporal.APIKey = os.Getenv("TERRATASK_TEMPORAL_API_KEY")
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	o.Logger = log
	ctx, stop := signalContext()
	defer stop()
	return app.RunRunner(ctx, o)
}

func runMigrate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "Apply the store's schema migrations and exit: PostgreSQL (postgres://...) or a SQLite\nfile path. Safe to run again and from several processes at once; servers and runners\nalso migrate when they open the store, so this is for migrating ahead of a rollout.", stderr)
	dsn := fs.String("store", "", "store to migrate (required): postgres://USER@HOST:PORT/DB?sslmode=... or a SQLite file path")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	addConfigFlags(fs)
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if *dsn == "" {
		return usageError{errors.New("--store is required (or TERRATASK_STORE)")}
	}
	ctx, stop := signalContext()
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	if err := app.Migrate(ctx, *dsn); err != nil {
		return fmt.Errorf("migrating %s: %w", redactDSN(*dsn), err)
	}
	fmt.Fprintf(stdout, "store migrated: %s\n", redactDSN(*dsn))
	return nil
}

const keysUsage = `Usage:
  terratask keys new --name NAME --org ORG --role viewer|operator|admin [--agent AGENT]
      print a new raw key (give it to its user) and its keys-file entry (store that)
  terratask keys hash      read a raw key on stdin, print its keys-file hash
  terratask keys secret    print a new base64 secret key for --secret-key
`

func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return usageError{fmt.Errorf("keys: missing subcommand")}
	}
	switch args[0] {
	case "new":
		fs := newFlags("keys new", "Create an API key.", stderr)
		fs.Usage = func() {
			fmt.Fprint(stderr, "Usage: terratask keys new [flags]\n\nCreate an API key.\n\nFlags:\n")
			fs.PrintDefaults()
		}
		name := fs.String("name", "", "key name (shown as cancelled_by)")
		org := fs.String("org", "default", "org the key belongs to")
		role := fs.String("role", "operator", "viewer, operator or admin")
		agent := fs.String("agent", "", "bind the key to one agent ID")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		raw, err := auth.GenerateKey()
		if err != nil {
			return err
		}
		k := auth.Key{Name: *name, Org: *org, Role: auth.Role(*role), Agent: *agent, Hash: auth.HashKey(raw)}
		if _, err := auth.NewKeyring([]auth.Key{k}); err != nil {
			return usageError{err}
		}
		fmt.Fprintf(stdout, "key: %s\n\n# keys-file entry:\n- name: %s\n  org: %s\n  role: %s\n", raw, k.Name, k.Org, k.Role)
		if k.Agent != "" {
			fmt.Fprintf(stdout, "  agent: %s\n", k.Agent)
		}
		fmt.Fprintf(stdout, "  hash: %s\n", k.Hash)
	case "hash":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		if err != nil {
			return err
		}
		raw := string(b)
		for len(raw) > 0 && (raw[len(raw)-1] == '\n' || raw[len(raw)-1] == '\r') {
			raw = raw[:len(raw)-1]
		}
		if raw == "" {
			return usageError{fmt.Errorf("keys hash: no key on stdin")}
		}
		fmt.Fprintln(stdout, auth.HashKey(raw))
	case "secret":
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(b))
	default:
		fmt.Fprint(stderr, keysUsage)
		return usageError{fmt.Errorf("keys: unknown subcommand %q", args[0])}
	}
	return nil
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
