package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/internal/app"
	"github.com/terratask/terratask/internal/temporalutil"
)

// namespaceCommand prepares a self-hosted Temporal cluster for terratask
// without the temporal CLI: `namespace create` registers the namespace
// (idempotent).
func namespaceCommand(stdout, stderr io.Writer) *cobra.Command {
	var t app.TemporalOptions
	var retention, wait time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Register the Temporal namespace if it does not exist",
		Long: `Register the Temporal namespace (--namespace) with a workflow retention, unless it exists,
and wait until it is usable. An existing namespace is left as it is.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, stdout); err != nil {
				return err
			}
			t.APIKey = os.Getenv("TERRATASK_TEMPORAL_API_KEY")
			ctx, stop := signalContext()
			defer stop()
			return createNamespace(ctx, t, retention, wait, stdout)
		},
	}
	temporalFlags(create.Flags(), &t)
	create.Flags().DurationVar(&retention, "retention", 72*time.Hour, "workflow history retention of a new namespace (also how long Idempotency-Keys are remembered)")
	create.Flags().DurationVar(&wait, "timeout", 2*time.Minute, "how long to wait for the Temporal frontend")
	return group("namespace", "Create the Temporal namespace on a self-hosted cluster (namespace create)", configured(create))
}

func createNamespace(ctx context.Context, t app.TemporalOptions, retention, wait time.Duration, stdout io.Writer) error {
	opts, err := namespaceClientOptions(t)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var c client.Client
	for {
		if c, err = client.DialContext(ctx, opts); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connecting to Temporal at %s: %w", opts.HostPort, err)
		case <-time.After(time.Second):
		}
	}
	defer c.Close()
	if err := temporalutil.EnsureNamespace(ctx, c, opts.Namespace, retention); err != nil {
		return err
	}
	if err := temporalutil.WaitForNamespaceReady(ctx, c, opts.Namespace); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "namespace %s ready on %s\n", opts.Namespace, opts.HostPort)
	return nil
}

// namespaceClientOptions turns the --temporal-* flags into SDK options.
func namespaceClientOptions(t app.TemporalOptions) (client.Options, error) {
	o := client.Options{HostPort: t.Address, Namespace: t.Namespace, Logger: quietSDKLogger{}}
	if t.TLSCA == "" && t.TLSCert == "" && t.APIKey == "" {
		return o, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLSServer}
	if t.TLSCA != "" {
		pem, err := os.ReadFile(t.TLSCA)
		if err != nil {
			return o, fmt.Errorf("reading --temporal-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return o, errors.New("--temporal-tls-ca holds no PEM certificate")
		}
	}
	if (t.TLSCert == "") != (t.TLSKey == "") {
		return o, errors.New("give both --temporal-tls-cert and --temporal-tls-key, or neither")
	}
	if t.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
		if err != nil {
			return o, fmt.Errorf("loading the Temporal client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	o.ConnectionOptions.TLS = cfg
	if t.APIKey != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	return o, nil
}

// quietSDKLogger drops the SDK's own logging for this short command.
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}
