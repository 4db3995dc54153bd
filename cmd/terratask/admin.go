package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/internal/app"
	secretpkg "github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
)

// The administration commands: migrate and keys.

func migrateCommand(stdout io.Writer) *cobra.Command {
	var dsn string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the store's schema migrations (PostgreSQL or SQLite) and exit",
		Long: `Apply the store's schema migrations and exit: PostgreSQL (postgres://...) or a SQLite
file path. Safe to run again and from several processes at once; servers and runners
also migrate when they open the store, so this is for migrating ahead of a rollout.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, stdout); err != nil {
				return err
			}
			if dsn == "" {
				return usageError{errors.New("--store is required (or TERRATASK_STORE)")}
			}
			ctx, stop := signalContext()
			defer stop()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			if err := app.Migrate(ctx, dsn); err != nil {
				return fmt.Errorf("migrating %s: %w", redactDSN(dsn), err)
			}
			fmt.Fprintf(stdout, "store migrated: %s\n", redactDSN(dsn))
			return nil
		},
	}
	cmd.Flags().StringVar(&dsn, "store", "", "store to migrate (required): postgres://USER@HOST:PORT/DB?sslmode=... or a SQLite file path")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return configured(cmd)
}

func keysCommand(stdout io.Writer) *cobra.Command {
	var name, org, role, agent string
	newKey := &cobra.Command{
		Use:   "new",
		Short: "Print a new raw key (give it to its user) and its keys-file entry (store that)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := auth.GenerateKey()
			if err != nil {
				return err
			}
			k := auth.Key{Name: name, Org: org, Role: auth.Role(role), Agent: agent, Hash: auth.HashKey(raw)}
			if _, err := auth.NewKeyring([]auth.Key{k}); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(stdout, "key: %s\n\n# keys-file entry:\n- name: %s\n  org: %s\n  role: %s\n", raw, k.Name, k.Org, k.Role)
			if k.Agent != "" {
				fmt.Fprintf(stdout, "  agent: %s\n", k.Agent)
			}
			fmt.Fprintf(stdout, "  hash: %s\n", k.Hash)
			return nil
		},
	}
	newKey.Flags().StringVar(&name, "name", "", "key name (shown as cancelled_by)")
	newKey.Flags().StringVar(&org, "org", "default", "org the key belongs to")
	newKey.Flags().StringVar(&role, "role", "operator", "viewer, operator or admin")
	newKey.Flags().StringVar(&agent, "agent", "", "bind the key to one agent ID")
	hash := &cobra.Command{
		Use:   "hash",
		Short: "Read a raw key on stdin, print its keys-file hash",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			return nil
		},
	}
	secret := &cobra.Command{
		Use:   "secret",
		Short: "Print a new base64 secret key (for --secret-key-file or TERRATASK_SECRET_KEY)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(b))
			return nil
		},
	}
	var orgName, secretFile string
	orgKey := &cobra.Command{
		Use:   "org",
		Short: "Print the key of one org's runners, derived from the secret key (TERRATASK_SECRET_KEY or --secret-key-file)",
		Long: `Print the key of one org's runners: their TERRATASK_SECRET_KEY (or --secret-key-file).
It is derived one way from the control plane's secret key, which it needs
(TERRATASK_SECRET_KEY or --secret-key-file): run it on a host that holds that key.
A runner holding it opens its org's task secrets and Temporal payloads and
nothing of another org's; the secret key itself stays on the control plane.
After a rotation of the secret key, run it with the old key for the runners'
--old-secret-keys-file.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !auth.ValidName(orgName) {
				return usageError{fmt.Errorf("keys org: --org must be 1-128 letters, digits and @._:+-")}
			}
			raw, err := secretKey(secretFile)
			if err != nil {
				return err
			}
			if raw == "" {
				return usageError{fmt.Errorf("keys org: the secret key is needed (TERRATASK_SECRET_KEY or --secret-key-file)")}
			}
			key, err := secretpkg.ParseKey(raw)
			if err != nil {
				return usageError{err}
			}
			k, err := master.OrgKey(key, orgName)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k))
			return nil
		},
	}
	orgKey.Flags().StringVar(&orgName, "org", "", "the org whose runners' key to print (required)")
	orgKey.Flags().StringVar(&secretFile, "secret-key-file", "", "file holding the control plane's secret key (or set TERRATASK_SECRET_KEY)")
	return group("keys", "Create API keys (keys new), hash a key (keys hash), create a secret key (keys secret), derive an org's runner key (keys org)", newKey, hash, secret, orgKey)
}
