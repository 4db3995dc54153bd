package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/task"
)

// TasksCommand is `terratask tasks` and its verbs.
func TasksCommand(env Env) *cobra.Command {
	o := &options{env: env}
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "Create, list, watch, review and cancel tasks",
		Long: `Create, list, watch, review and cancel tasks through the API.

The API's address comes from --address or TERRATASK_ADDRESS (default ` + client.DefaultAddress + `),
the API key from TERRATASK_API_KEY. Output is a table on a terminal and JSON otherwise
(--output). Commands that wait exit 0 when the task completed, 1 when it failed,
3 when it was cancelled or its plan rejected, and 4 when the wait timed out.`,
	}
	cmd.Args, cmd.RunE = cobra.ArbitraryArgs, missingCommand
	addClientFlags(cmd, o)
	cmd.AddCommand(o.createCommand(), o.listCommand(), o.getCommand(), o.statusCommand(), o.logsCommand(),
		o.planCommand(), o.decideCommand("approve"), o.decideCommand("reject"), o.cancelCommand(), o.waitCommand())
	return cmd
}

func (o *options) listCommand() *cobra.Command {
	var lo client.ListOptions
	var status []string
	cmd := &cobra.Command{
		Use: "list", Short: "List tasks (filters, sort, paging)", Args: exactArgs(0, "no arguments"),
		Example: "  terratask tasks list --status running,pending --sort updated_at\n  terratask tasks list --agent agent-456 --limit 10 --page 2",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			for _, s := range status {
				for _, st := range strings.Split(s, ",") {
					lo.Status = append(lo.Status, task.Status(strings.TrimSpace(st)))
				}
			}
			page, err := c.ListTasks(cmd.Context(), lo)
			if err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(o.env.Stdout, page.Tasks)
			}
			rows := make([][]string, 0, len(page.Tasks))
			for _, t := range page.Tasks {
				rows = append(rows, []string{t.ID, t.Name, string(t.Status), fmt.Sprintf("%d%%", t.Progress), t.AgentID, t.RunnerID, t.CreatedAt})
			}
			if err := table(o.env.Stdout, []string{"ID", "NAME", "STATUS", "PROGRESS", "AGENT", "RUNNER", "CREATED"}, rows); err != nil {
				return err
			}
			if page.Next > 0 {
				fmt.Fprintf(o.env.Stderr, "%d tasks in all; next page: --page %d\n", page.Total, page.Next)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&status, "status", nil, "only these statuses (comma list: pending, running, waiting_approval, cancelling, completed, failed, cancelled, rejected)")
	fs.StringVar(&lo.Agent, "agent", "", "only this agent's tasks")
	fs.StringVar(&lo.Runner, "runner", "", "only this runner's tasks")
	fs.IntVar(&lo.Limit, "limit", 0, "tasks per page, 1 to 1000 (default 50)")
	fs.IntVar(&lo.Page, "page", 0, "page number, from 1")
	fs.StringVar(&lo.Sort, "sort", "", "created_at, updated_at or status (default created_at)")
	fs.StringVar(&lo.Order, "order", "", "asc or desc (default desc)")
	return cmd
}

func (o *options) getCommand() *cobra.Command {
	return &cobra.Command{
		Use: "get TASK_ID", Short: "Show a task with its result", Args: exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			t, err := c.GetTask(cmd.Context(), args[0])
			if err != nil {
				return apiFailure(err)
			}
			return o.printTask(t, asJSON)
		},
	}
}

// printTask shows a task: JSON, or its fields and result.
func (o *options) printTask(t api.Task, asJSON bool) error {
	if asJSON {
		return printJSON(o.env.Stdout, t)
	}
	kv := [][2]string{
		{"ID", t.ID}, {"Name", t.Name}, {"Status", string(t.Status)}, {"Progress", fmt.Sprintf("%d%%", t.Progress)},
		{"Agent", t.AgentID}, {"Runner", t.RunnerID}, {"Created", t.CreatedAt}, {"Started", orDash(t.StartedAt)},
		{"Completed", orDash(t.CompletedAt)},
	}
	if t.Description != "" {
		kv = append(kv[:2], append([][2]string{{"Description", t.Description}}, kv[2:]...)...)
	}
	if t.CancelledBy != "" {
		kv = append(kv, [2]string{"Cancelled", orDash(t.CancelledAt) + " by " + t.CancelledBy})
	}
	if r := t.Result; r != nil {
		for _, name := range sortedKeys(r.Output) {
			b, _ := json.Marshal(r.Output[name])
			kv = append(kv, [2]string{"Output " + name, string(b)})
		}
		if r.Error != nil {
			kv = append(kv, [2]string{"Error", r.Error.Code + ": " + r.Error.Message})
		}
	}
	if p := t.Policy; p != nil {
		kv = append(kv, [2]string{"Policy", p.Decision + " (" + p.Stage + ")"})
		for _, res := range p.Results {
			kv = append(kv, [2]string{"  " + res.Rule, fmt.Sprintf("%s v%d: %s", res.Policy, res.Version, res.Message)})
		}
	}
	return fields(o.env.Stdout, kv)
}

func (o *options) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use: "status TASK_ID", Short: "Show a task's live status, step and resource counts", Args: exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			st, err := c.GetStatus(cmd.Context(), args[0])
			if err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(o.env.Stdout, st)
			}
			p := progressOf(st)
			kv := [][2]string{{"ID", st.ID}, {"Status", string(st.Status)}, {"Progress", fmt.Sprintf("%d%%", st.Progress)},
				{"Step", p.stepText()}, {"Resources", p.resourcesText()}, {"Started", orDash(st.StartedAt)}, {"Updated", st.UpdatedAt}}
			if p.waitingFor != "" {
				kv = append(kv, [2]string{"Waiting for", p.waitingFor})
			}
			return fields(o.env.Stdout, kv)
		},
	}
}

func (o *options) logsCommand() *cobra.Command {
	var follow bool
	var levels []string
	cmd := &cobra.Command{
		Use: "logs TASK_ID", Short: "Print a task's log entries (--follow: until it ends)", Args: exactArgs(1, "TASK_ID"),
		Example: "  terratask tasks logs task-abc --level warn,error\n  terratask tasks logs task-abc --follow",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			var lv []task.Level
			for _, l := range levels {
				for _, s := range strings.Split(l, ",") {
					lv = append(lv, task.Level(strings.TrimSpace(s)))
				}
			}
			enc := json.NewEncoder(o.env.Stdout)
			print := func(e api.LogEntry) error {
				if asJSON {
					return enc.Encode(e) // one object a line
				}
				_, err := fmt.Fprintf(o.env.Stdout, "%s %-5s %s\n", e.Timestamp, e.Level, sanitize(e.Message))
				return err
			}
			if follow {
				if err := c.Follow(cmd.Context(), args[0], print, client.Levels(lv...)); err != nil {
					return apiFailure(err)
				}
				return nil
			}
			cursor := ""
			for {
				page, err := c.GetLogs(cmd.Context(), args[0], client.LogOptions{Levels: lv, Cursor: cursor, Limit: 10000})
				if err != nil {
					return apiFailure(err)
				}
				for _, e := range page.Logs.Logs {
					if err := print(e); err != nil {
						return err
					}
				}
				if cursor = page.NextCursor; cursor == "" {
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new entries until the task has ended")
	cmd.Flags().StringSliceVar(&levels, "level", nil, "only these levels (comma list of debug, info, warn, error)")
	return cmd
}

func (o *options) planCommand() *cobra.Command {
	return &cobra.Command{
		Use: "plan TASK_ID", Short: "Show a task's saved plan (text on a terminal, JSON with --output json)", Args: exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			if asJSON {
				plan, err := c.GetPlan(cmd.Context(), args[0])
				if err != nil {
					return apiFailure(err)
				}
				return printJSON(o.env.Stdout, plan)
			}
			text, err := c.GetPlanText(cmd.Context(), args[0])
			if err != nil {
				return apiFailure(err)
			}
			_, err = fmt.Fprint(o.env.Stdout, text)
			return err
		},
	}
}

func (o *options) decideCommand(verb string) *cobra.Command {
	var comment string
	what := map[string]string{"approve": "Approve a waiting task's plan: it applies", "reject": "Reject a waiting task's plan: the task ends rejected"}[verb]
	cmd := &cobra.Command{
		Use: verb + " TASK_ID", Short: what, Args: exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			decide := c.ApproveTask
			if verb == "reject" {
				decide = c.RejectTask
			}
			t, err := decide(cmd.Context(), args[0], comment)
			if err != nil {
				return apiFailure(err)
			}
			return o.printTask(t, asJSON)
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "a comment recorded with the decision")
	return cmd
}

func (o *options) cancelCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "cancel TASK_ID", Short: "Cancel a task (--force: kill Terraform's processes; admin)", Args: exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			r, err := c.CancelTask(cmd.Context(), args[0], client.CancelOptions{Force: force})
			if err != nil {
				return apiFailure(err)
			}
			if asJSON {
				return printJSON(o.env.Stdout, r)
			}
			return fields(o.env.Stdout, [][2]string{{"ID", r.ID}, {"Status", string(r.Status)}, {"Cancelled", orDash(r.CancelledAt) + " by " + r.CancelledBy}})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "after a plain cancel and a 10 s cool-off, kill Terraform's process tree (admin keys)")
	return cmd
}
