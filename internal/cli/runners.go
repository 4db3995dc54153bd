package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/terratask/terratask/api"
)

// RunnersCommand is `terratask runners`: list runners and read one.
func RunnersCommand(env Env) *cobra.Command {
	o := &options{env: env}
	cmd := &cobra.Command{
		Use:   "runners",
		Short: "List runners and their liveness",
		Long:  "List the runners your org's tasks name, with their liveness (online/offline, hosts), and read one.",
	}
	cmd.Args, cmd.RunE = cobra.ArbitraryArgs, missingCommand
	addClientFlags(cmd, o)
	list := &cobra.Command{
		Use: "list", Short: "List runners your org's tasks name", Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			rs, err := c.ListRunners(cmd.Context())
			if err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(env.Stdout, rs)
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, []string{r.ID, r.Status, fmt.Sprint(r.Workers), orDash(r.LastSeen), taskCounts(r)})
			}
			return table(env.Stdout, []string{"ID", "STATUS", "WORKERS", "LAST SEEN", "TASKS"}, rows)
		},
	}
	get := &cobra.Command{
		Use: "get RUNNER_ID", Short: "Read one runner's liveness and hosts", Args: exactArgs(1, "RUNNER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.showRunner(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(list, get)
	return cmd
}

func (o *options) showRunner(ctx context.Context, id string) error {
	c, asJSON, err := o.setup()
	if err != nil {
		return err
	}
	r, err := c.GetRunner(ctx, id)
	if err != nil {
		return apiFailure(err)
	}
	if asJSON {
		return printJSON(o.env.Stdout, r)
	}
	kv := [][2]string{{"ID", r.ID}, {"Status", r.Status}, {"Workers", fmt.Sprint(r.Workers)}, {"Last seen", orDash(r.LastSeen)}, {"Tasks", taskCounts(r)}}
	for _, h := range r.Hosts {
		kv = append(kv, [2]string{"Host", h.Identity + " (last seen " + h.LastSeen + ")"})
	}
	return fields(o.env.Stdout, kv)
}

// taskCounts renders a runner's tasks by status: "pending=1 running=2".
func taskCounts(r api.Runner) string {
	if len(r.Tasks) == 0 {
		return "-"
	}
	var parts []string
	for st, n := range r.Tasks {
		parts = append(parts, fmt.Sprintf("%s=%d", st, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
