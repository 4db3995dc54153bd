// Command terratask runs IaC tasks as durable Temporal workflows, and is
// their command-line client.
//
//	terratask dev      everything in one process (embedded Temporal, Web UI, API, runner)
//	terratask server   HTTP API and control-plane worker against an existing Temporal
//	terratask runner   a runner that executes Terraform for one runner ID
//	terratask migrate  apply the store's schema migrations and exit
//	terratask namespace create  register the Temporal namespace (self-hosted clusters)
//	terratask keys     create API keys and their hashes, and secret keys
//
//	terratask tasks    create, list, watch, review and cancel tasks (package cli)
//	terratask runners  list runners and their liveness
//	terratask policies manage, test and dry-run the org's Rego policies
//	terratask credentials manage the org's credential sets (values write-only)
//	terratask mcp      an MCP server of task tools for AI agents, over stdio
//
// Every flag of dev, server, runner, migrate and namespace create can also be
// set by an environment variable (--http-address is TERRATASK_HTTP_ADDRESS)
// and by a YAML config file (--config FILE or TERRATASK_CONFIG; key
// http-address). Precedence: flag > environment > config file > default.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/terratask/terratask/internal/app"
	"github.com/terratask/terratask/internal/cli"
	"github.com/terratask/terratask/internal/watchdog"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) == 2 && os.Args[1] == watchdog.Command {
		// The runner's watchdog (hidden: the runner starts it).
		os.Exit(watchdog.Main())
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process's exit code: 0 on
// success, 2 for usage errors, else as the command says (package cli's task
// commands: 1 failed, 3 cancelled or rejected, 4 wait timeout).
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	switch {
	case err == nil, errors.Is(err, errChecked):
		return 0
	}
	var exit *cli.ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintln(stderr, "terratask:", exit.Err)
		}
		return exit.Code
	}
	fmt.Fprintln(stderr, "terratask:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return 2
	}
	return 1
}

// isCobraUsage recognises cobra's own errors for a bad command line.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "required flag", "invalid argument", "accepts ", "requires ", "flag needs an argument", "bad flag syntax"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	app.Version = version
	root := &cobra.Command{
		Use:   "terratask",
		Short: "terratask runs infrastructure-as-code tasks as durable Temporal workflows",
		Long: `terratask runs infrastructure-as-code tasks as durable Temporal workflows.

Run it (dev, server, runner, ...), and use it: "terratask tasks create ... --wait"
creates a task and shows its progress; "terratask mcp" serves task tools to AI agents.
The task commands read the API's address from --address or TERRATASK_ADDRESS and
the API key from TERRATASK_API_KEY.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return missingSubcommand(cmd, args)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("terratask {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddGroup(&cobra.Group{ID: "run", Title: "Run terratask:"}, &cobra.Group{ID: "use", Title: "Use terratask:"})
	for _, c := range []*cobra.Command{devCommand(stdout, stderr), serverCommand(stdout, stderr), runnerCommand(stdout, stderr),
		migrateCommand(stdout), namespaceCommand(stdout, stderr), keysCommand(stdout)} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	env := cli.Env{Stdout: stdout, Stderr: stderr, Stdin: os.Stdin, Getenv: os.Getenv}
	for _, c := range []*cobra.Command{cli.TasksCommand(env), cli.RunnersCommand(env), cli.PoliciesCommand(env), cli.CredentialsCommand(env), mcpCommand(env)} {
		c.GroupID = "use"
		root.AddCommand(c)
	}
	root.AddCommand(&cobra.Command{
		Use: "version", Short: "Print the version", Args: noArgs,
		Run: func(cmd *cobra.Command, _ []string) { fmt.Fprintln(stdout, "terratask", version) },
	})
	return root
}

// missingSubcommand is the RunE of a command that only groups others: its
// help on stderr and a usage error.
func missingSubcommand(cmd *cobra.Command, args []string) error {
	cmd.SetOut(cmd.ErrOrStderr())
	_ = cmd.Help()
	if len(args) > 0 {
		return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
	}
	return usageError{fmt.Errorf("%s: missing command", cmd.CommandPath())}
}

// group returns a command that only groups subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: missingSubcommand}
	c.AddCommand(subs...)
	return c
}

// noArgs refuses positional arguments as a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", args[0])}
	}
	return nil
}

// listFlag is a repeatable flag; from the environment it takes a comma list.
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }
func (l *listFlag) Type() string   { return "strings" }
func (l *listFlag) Set(v string) error {
	if !l.set {
		l.vals, l.set = nil, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.vals = append(l.vals, s)
		}
	}
	return nil
}

var _ pflag.Value = (*listFlag)(nil)

func newLogger(level string, stderr io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %v", err)}
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(stderr), lvl)
	return zap.New(core), nil
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func temporalFlags(fs *pflag.FlagSet, t *app.TemporalOptions) {
	fs.StringVar(&t.Address, "temporal-address", "127.0.0.1:7233", "Temporal frontend host:port")
	fs.StringVar(&t.Namespace, "namespace", "default", "Temporal namespace")
	fs.StringVar(&t.TLSCA, "temporal-tls-ca", "", "CA bundle (PEM) to verify the Temporal frontend; enables TLS")
	fs.StringVar(&t.TLSCert, "temporal-tls-cert", "", "client certificate (PEM) for mTLS to Temporal")
	fs.StringVar(&t.TLSKey, "temporal-tls-key", "", "client key (PEM) for mTLS to Temporal")
	fs.StringVar(&t.TLSServer, "temporal-tls-server-name", "", "server name to verify when it differs from the address\n(a Temporal Cloud API key is read from TERRATASK_TEMPORAL_API_KEY, never a flag)")
}
