// Package cli is terratask's command line for people and scripts: the
// `tasks` and `runners` commands over package client, with tables on a
// terminal and JSON otherwise, a live progress view while a task runs, and
// exit codes that say how a task ended (0 completed, 1 failed, 2 usage,
// 3 cancelled or rejected, 4 a wait that timed out).
//
// The commands read the API's address from --address or TERRATASK_ADDRESS
// and the API key from TERRATASK_API_KEY (never a flag, so it stays off
// command lines and shell history).
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/terratask/terratask/client"
)

// Exit codes of the task commands.
const (
	ExitFailed    = 1 // the task failed, or the command did
	ExitUsage     = 2 // a bad command line
	ExitCancelled = 3 // the task was cancelled, or its plan rejected
	ExitTimeout   = 4 // a wait ended before the task did
)

// ExitError ends the process with Code; Err, when set, is printed first.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func usage(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// Env is what the commands read and write, so tests run them in process.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Getenv         func(string) string
}

// options are the flags every client command shares.
type options struct {
	env     Env
	address string
	output  string
}

// addClientFlags registers --address and --output on a command group.
func addClientFlags(cmd *cobra.Command, o *options) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&o.address, "address", "", "the API's base URL (default TERRATASK_ADDRESS, else "+client.DefaultAddress+")")
	fs.StringVarP(&o.output, "output", "o", "", "table or json (default: table on a terminal, json otherwise; or TERRATASK_OUTPUT)")
}

// client builds the API client from the flags and the environment.
func (o *options) client() (*client.Client, error) {
	addr := o.address
	if addr == "" {
		addr = o.env.Getenv("TERRATASK_ADDRESS")
	}
	return client.New(addr, client.WithAPIKey(o.env.Getenv("TERRATASK_API_KEY")), client.WithUserAgent("terratask-cli"))
}

// setup returns the client and whether output is JSON.
func (o *options) setup() (*client.Client, bool, error) {
	asJSON, err := o.json()
	if err != nil {
		return nil, false, err
	}
	c, err := o.client()
	if err != nil {
		return nil, false, usage("%v", err)
	}
	return c, asJSON, nil
}

// json reports whether output is JSON: --output, else TERRATASK_OUTPUT,
// else JSON unless stdout is a terminal.
func (o *options) json() (bool, error) {
	out := o.output
	if out == "" {
		out = o.env.Getenv("TERRATASK_OUTPUT")
	}
	switch strings.ToLower(out) {
	case "json":
		return true, nil
	case "table":
		return false, nil
	case "":
		return !isTerminal(o.env.Stdout), nil
	}
	return false, usage("--output %q: want table or json", out)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fields writes "Key: value" lines, aligned.
func fields(w io.Writer, kv [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

// apiFailure makes an API error the command's: its message, exit 1.
func apiFailure(err error) error {
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: ExitFailed, Err: err}
}

// exactArgs is cobra.ExactArgs as a usage error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usage("%s: want %s", cmd.CommandPath(), names)
		}
		return nil
	}
}

// orDash renders an optional value.
func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// missingCommand is the RunE of a command group: its help on stderr and a
// usage error.
func missingCommand(cmd *cobra.Command, args []string) error {
	cmd.SetOut(cmd.ErrOrStderr())
	_ = cmd.Help()
	if len(args) > 0 {
		return usage("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return usage("%s: missing command", cmd.CommandPath())
}
