// Command terratask runs IaC tasks as durable Temporal workflows.
//
//	terratask dev      everything in one process (embedded Temporal, Web UI, API, runner)
//	terratask server   HTTP API and control-plane worker against an existing Temporal
//	terratask runner   a runner that executes Terraform for one runner ID
//	terratask keys     create API keys and their hashes, and secret keys
//
//	terratask migrate  apply the store's schema migrations and exit
//	terratask namespace create  register the Temporal namespace (self-hosted clusters)
//
// Every flag can also be set by an environment variable (--http-address is
// TERRATASK_HTTP_ADDRESS) and by a YAML config file (--config FILE or
// TERRATASK_CONFIG; key http-address). Precedence: flag > environment >
// config file > default.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/terratask/terratask/internal/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `terratask runs infrastructure-as-code tasks as durable Temporal workflows.

Usage:
  terratask <command> [flags]

Commands:
  dev       run everything in one process: embedded Temporal (SQLite), Web UI,
            control-plane worker, local runners and the HTTP API
  server    run the HTTP API and control-plane worker against a Temporal cluster
  runner    run a runner that executes Terraform for tasks of one runner ID
  migrate   apply the store's schema migrations (PostgreSQL or SQLite) and exit
  namespace create the Temporal namespace on a self-hosted cluster (namespace create)
  keys      create API keys (keys new), hash a key (keys hash), create a secret key (keys secret)
  version   print the version

Run "terratask <command> -h" for the flags of a command. Every flag may also be
set through the environment (--http-address is TERRATASK_HTTP_ADDRESS) or a YAML
config file (--config FILE or TERRATASK_CONFIG; key http-address). Precedence:
flag > environment > config file > default.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "dev":
		err = runDev(rest, stdout, stderr)
	case "server":
		err = runServer(rest, stdout, stderr)
	case "runner":
		err = runRunner(rest, stdout, stderr)
	case "migrate":
		err = runMigrate(rest, stdout, stderr)
	case "namespace":
		err = runNamespace(rest, stdout, stderr)
	case "keys":
		err = runKeys(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "terratask", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "terratask: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errChecked) {
		return 0
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "terratask:", err)
			return 2
		}
		fmt.Fprintln(stderr, "terratask:", err)
		return 1
	}
	return 0
}

type usageError struct{ error }

// newFlags returns a flag set whose usage names the command.
func newFlags(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("terratask "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: terratask %s [flags]\n\n%s\n\nFlags (each also read from TERRATASK_<NAME>, e.g. --data-dir is TERRATASK_DATA_DIR, and from\nthe --config file's key of the same name; precedence: flag > environment > file > default):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// listFlag is a repeatable flag; from the environment it takes a comma list.
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }
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

func temporalFlags(fs *flag.FlagSet, t *app.TemporalOptions) {
	fs.StringVar(&t.Address, "temporal-address", "127.0.0.1:7233", "Temporal frontend host:port")
	fs.StringVar(&t.Namespace, "namespace", "default", "Temporal namespace")
	fs.StringVar(&t.TLSCA, "temporal-tls-ca", "", "CA bundle (PEM) to verify the Temporal frontend; enables TLS")
	fs.StringVar(&t.TLSCert, "temporal-tls-cert", "", "client certificate (PEM) for mTLS to Temporal")
	fs.StringVar(&t.TLSKey, "temporal-tls-key", "", "client key (PEM) for mTLS to Temporal")
	fs.StringVar(&t.TLSServer, "temporal-tls-server-name", "", "server name to verify when it differs from the address\n(a Temporal Cloud API key is read from TERRATASK_TEMPORAL_API_KEY, never a flag)")
}
