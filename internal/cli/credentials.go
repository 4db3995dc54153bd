package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
)

// CredentialsCommand is `terratask credentials`: the org's credential
// sets through the API. No command prints a value: the API never returns
// one.
func CredentialsCommand(env Env) *cobra.Command {
	o := &options{env: env}
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Manage the org's credential sets (admin)",
		Long: `Manage the org's credential sets: env vars and sensitive variables an admin keeps on the
server, sealed, for the tasks that name a set in parameters.credentials (or that it
attaches itself to by workspace), and who may use it (agents, workspaces, runners, as
glob lists). Agents name the credentials their tasks need; they never hold them.

Values are write-only: list and get show their names. put reads the set from a JSON file
(- reads stdin), the body of PUT /api/v1/credential-sets/{name}:

  {"description": "...", "env": {"AWS_ACCESS_KEY_ID": "..."}, "sensitive_variables": {"db_password": "..."},
   "agents": ["deploy-*"], "workspaces": ["prod-*"], "runners": [], "attach": false,
   "oidc": {"provider": "aws", "aws_role_arn": "arn:aws:iam::123456789012:role/terratask"}}

A put replaces the set; a file without env or sensitive_variables keeps the stored values
(so scopes change without the values), {} removes them.

Every command needs an admin key. The API's address comes from --address or
TERRATASK_ADDRESS (default ` + client.DefaultAddress + `), the API key from TERRATASK_API_KEY.
Output is a table on a terminal and JSON otherwise (--output).`,
	}
	cmd.Args, cmd.RunE = cobra.ArbitraryArgs, missingCommand
	addClientFlags(cmd, o)
	cmd.AddCommand(o.credentialListCommand(), o.credentialGetCommand(), o.credentialPutCommand(), o.credentialDeleteCommand())
	return cmd
}

func (o *options) credentialListCommand() *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the org's credential sets, the names of their values (admin)", Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			sets, err := c.ListCredentialSets(cmd.Context())
			if err != nil {
				return apiFailure(err)
			}
			if sets == nil {
				sets = []api.CredentialSet{}
			}
			if asJSON {
				return printJSON(o.env.Stdout, sets)
			}
			rows := make([][]string, 0, len(sets))
			for _, s := range sets {
				rows = append(rows, []string{s.Name, list(s.EnvNames), list(s.SensitiveVariableNames), globs(s.Agents), globs(s.Workspaces),
					globs(s.Runners), yesNo(s.Attach), oidcOf(s.OIDC), s.UpdatedAt})
			}
			return table(o.env.Stdout, []string{"NAME", "ENV", "SENSITIVE VARIABLES", "AGENTS", "WORKSPACES", "RUNNERS", "ATTACH", "OIDC", "UPDATED"}, rows)
		},
	}
}

func (o *options) credentialGetCommand() *cobra.Command {
	return &cobra.Command{
		Use: "get NAME", Short: "Show a credential set: its scopes and the names of its values (admin)", Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			s, err := c.GetCredentialSet(cmd.Context(), args[0])
			if err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(o.env.Stdout, s)
			}
			return printCredentialSet(o, s)
		},
	}
}

func printCredentialSet(o *options, s api.CredentialSet) error {
	kv := [][2]string{{"Name", s.Name}, {"Description", dash(s.Description)}, {"Env", list(s.EnvNames)},
		{"Sensitive variables", list(s.SensitiveVariableNames)}, {"Agents", globs(s.Agents)}, {"Workspaces", globs(s.Workspaces)},
		{"Runners", globs(s.Runners)}, {"Attach", yesNo(s.Attach)}, {"OIDC", oidcOf(s.OIDC)}}
	if o := s.OIDC; o != nil {
		kv = append(kv, [2]string{"OIDC audience", o.Audience})
		for _, f := range [][2]string{{"AWS role ARN", o.AWSRoleARN}, {"GCP workload provider", o.GCPWorkloadProvider},
			{"GCP service account", o.GCPServiceAccount}, {"Azure client ID", o.AzureClientID}, {"Azure tenant ID", o.AzureTenantID}} {
			if f[1] != "" {
				kv = append(kv, f)
			}
		}
	}
	kv = append(kv, [2]string{"Created", s.CreatedAt + " by " + s.CreatedBy}, [2]string{"Updated", s.UpdatedAt + " by " + s.UpdatedBy})
	return fields(o.env.Stdout, kv)
}

func (o *options) credentialPutCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "put NAME --file FILE",
		Short: "Create or replace a credential set from a JSON file (- reads stdin; admin)",
		Long: `Create or replace a credential set from FILE, a JSON object as PUT /api/v1/credential-sets/{name}
takes it (see terratask credentials --help); - reads stdin, which keeps values out of
files. A file without env or sensitive_variables keeps the stored values; {} removes
them. The values are sealed by the server and never shown again.`,
		Example: "  terratask credentials put aws-prod --file aws-prod.json\n" +
			"  echo '{\"workspaces\": [\"prod-*\"], \"attach\": true}' | terratask credentials put aws-prod --file -",
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usage("--file is required: the set as JSON (- reads stdin)")
			}
			text, err := o.readFile(file)
			if err != nil {
				return err
			}
			dec := json.NewDecoder(bytes.NewReader([]byte(text)))
			dec.DisallowUnknownFields()
			dec.UseNumber()
			var body api.PutCredentialSetRequest
			if err := dec.Decode(&body); err != nil {
				// The decoder's message may quote the file: say where, not what.
				return usage("--file %s: not a credential set (a JSON object of name, description, env, sensitive_variables, agents, workspaces, runners, attach, oidc): %s",
					file, jsonWhere(err))
			}
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			s, created, err := c.PutCredentialSet(cmd.Context(), args[0], body)
			if err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(o.env.Stdout, s)
			}
			verb := "replaced"
			if created {
				verb = "created"
			}
			_, err = fmt.Fprintf(o.env.Stdout, "%s %s (env: %s; sensitive variables: %s)\n", verb, s.Name, list(s.EnvNames), list(s.SensitiveVariableNames))
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the set as JSON (- reads stdin)")
	return cmd
}

func (o *options) credentialDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a credential set: the next step of a task that uses it fails (admin)", Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			if err := c.DeleteCredentialSet(cmd.Context(), args[0]); err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(o.env.Stdout, map[string]any{"name": args[0], "deleted": true})
			}
			_, err = fmt.Fprintf(o.env.Stdout, "deleted %s\n", args[0])
			return err
		},
	}
}

// jsonWhere describes a decode error by position and kind, never by the
// text it read (a value).
func jsonWhere(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("malformed JSON at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("wrong type for %s at byte %d", e.Field, e.Offset)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	if err.Error() == "EOF" {
		return "empty"
	}
	return "malformed JSON"
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "-"
	}
	return strings.Join(xs, ", ")
}

// globs renders a scope: empty matches any.
func globs(xs []string) string {
	if len(xs) == 0 {
		return "(any)"
	}
	return strings.Join(xs, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func oidcOf(o *api.CredentialOIDC) string {
	if o == nil {
		return "-"
	}
	return o.Provider
}
