// Package mcp serves terratask's task tools to AI agents over the Model
// Context Protocol, with the official Go SDK: create_task, check_policies, get_task,
// get_task_status, get_task_logs, get_task_plan, list_tasks,
// wait_for_task, cancel_task and list_runners.
//
// Every tool calls the HTTP API through package client, so an agent can do
// exactly what its API key may: `terratask mcp` serves over stdio with the
// key of TERRATASK_API_KEY, and the API server serves /mcp (streamable
// HTTP) where each request's own Authorization header is the key, calling
// the API in process (client.HandlerTransport). There is deliberately no
// approve or reject tool: an agent never approves its own plan; a task
// created with approval waits for a person.
//
// API errors become tool errors (isError results) carrying the API's code
// and message, so the agent reads why and the session goes on.
package mcp

import (
	"context"
	"net/http"
	"time"

	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/terratask/terratask/client"
)

// Options configure the MCP server.
type Options struct {
	// Client calls the API. Over HTTP, each request's Authorization header
	// replaces its key.
	Client *client.Client
	// Version is reported to MCP clients.
	Version string
	// MaxWait bounds wait_for_task (default 5 minutes).
	MaxWait time.Duration
}

// NewServer returns an MCP server with terratask's task tools.
func NewServer(o Options) *mcpsdk.Server {
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 5 * time.Minute
	}
	s := mcpsdk.NewServer(&mcpsdk.Implementation{Name: "terratask", Title: "terratask", Version: o.Version}, &mcpsdk.ServerOptions{
		Instructions: instructions,
	})
	t := &tools{base: o.Client, maxWait: o.MaxWait}
	t.register(s)
	return s
}

const instructions = `terratask runs Terraform for you as durable tasks on named runners.
Create a task with create_task, then follow it with wait_for_task (bounded; call it again
while done is false), get_task_logs and get_task; cancel it with cancel_task.
A task created with parameters.approval "required" or "destructive" stops at status
waiting_approval after planning: a person reviews the plan (get_task_plan shows it) and
approves or rejects it outside this session. You cannot approve or reject a plan.
Your org's policies may deny a task (it fails with policy_denied and its policy field
says which rule and why: fix the task and create it again) or make its plan wait for a
person; check_policies tries a task against them without creating it.`

// ServeStdio serves the tools over stdin and stdout until ctx ends or the
// client disconnects.
func ServeStdio(ctx context.Context, o Options) error {
	return NewServer(o).Run(ctx, &mcpsdk.StdioTransport{})
}

// HTTPHandler serves the tools over MCP's streamable HTTP transport,
// calling the API served by api in process: each request's Authorization
// header is the caller's key, so authorization is exactly the API's. It is
// stateless (no session outlives a request), so any API replica answers any
// request. Answers stream as server-sent events, so wait_for_task's progress
// notifications reach the agent while it waits.
func HTTPHandler(api http.Handler, version string) http.Handler {
	c, _ := client.New("http://terratask.internal", client.WithUserAgent("terratask-mcp"),
		client.WithHTTPClient(&http.Client{Transport: client.HandlerTransport(api)}))
	s := NewServer(Options{Client: c, Version: version})
	return mcpsdk.NewStreamableHTTPHandler(func(*http.Request) *mcpsdk.Server { return s }, &mcpsdk.StreamableHTTPOptions{
		Stateless: true,
	})
}
