package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/internal/cli"
	"github.com/terratask/terratask/mcp"
)

// mcpCommand is `terratask mcp`: the MCP server over stdio, for an agent
// client that starts it as a subprocess.
func mcpCommand(env cli.Env) *cobra.Command {
	var address string
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve task tools to an AI agent over MCP (stdio)",
		Long: `Serve terratask's task tools to an AI agent over the Model Context Protocol on stdin and
stdout: create_task, get_task, get_task_status, get_task_logs, get_task_plan, list_tasks,
wait_for_task, cancel_task and list_runners. There is no approve or reject tool: a task
that waits for approval waits for a person.

The tools call the API at --address (or TERRATASK_ADDRESS, default ` + client.DefaultAddress + `) with the
key in TERRATASK_API_KEY, and can do what that key may. The API server also serves the
same tools over streamable HTTP at /mcp, with the caller's Authorization header as key.`,
		Example: `  {"mcpServers": {"terratask": {"command": "terratask", "args": ["mcp"],
    "env": {"TERRATASK_ADDRESS": "http://127.0.0.1:8080", "TERRATASK_API_KEY": "..."}}}}`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if address == "" {
				address = env.Getenv("TERRATASK_ADDRESS")
			}
			key := env.Getenv("TERRATASK_API_KEY")
			if key == "" {
				return usageError{errors.New("TERRATASK_API_KEY is not set: the tools call the API with it")}
			}
			c, err := client.New(address, client.WithAPIKey(key), client.WithUserAgent("terratask-mcp/"+version))
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signalContext()
			defer stop()
			err = mcp.ServeStdio(ctx, mcp.Options{Client: c, Version: version})
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&address, "address", "", "the API's base URL (default TERRATASK_ADDRESS, else "+client.DefaultAddress+")")
	return cmd
}
