// Package client is a typed Go client of terratask's HTTP API.
//
// Every route of the API has a method, typed with the wire types of package
// api (the same types the server renders with, so the two cannot drift):
// CreateTask, ListTasks, GetTask, GetStatus, GetLogs, CancelTask, GetPlan,
// ApproveTask, RejectTask, ListRunners, GetRunner, the events and webhooks
// routes (ListEvents, FollowEvents, CreateWebhook, ListDeliveries, ...),
// the schedules, the Terraform state routes, Health, Ready and OpenAPI.
// Above them, Wait polls a task until it is terminal and Follow streams its
// log entries (server-sent events, resumed with Last-Event-ID after a broken
// connection) until the task has ended and its last lines are read.
//
//	c, err := client.New("http://127.0.0.1:8080", client.WithAPIKey(os.Getenv("TERRATASK_API_KEY")))
//	if err != nil { ... }
//	t, err := c.CreateTask(ctx, api.CreateTask{Name: "hello", AgentID: "agent-1", RunnerID: "local"})
//	if err != nil { ... }
//	done, err := c.Wait(ctx, t.ID)
//	if errors.Is(err, client.ErrNotFound) { ... }
//
// Errors from the API are *Error values carrying its code, HTTP status,
// message and details; errors.Is matches them against the sentinels
// ErrNotFound, ErrConflict, ErrForbidden and the others, one per code.
//
// Retries: calls that are safe to repeat (reads, and creates, which always
// carry an Idempotency-Key) are retried with exponential backoff and jitter
// on network errors and on 502, 503 and 504 answers. A create resends the
// very bytes and Idempotency-Key of its first attempt, so a create retried
// after a dropped connection returns the task the first attempt made and
// never makes a second one. Calls that change state without such a key
// (cancel, approve, reject, the state writes) are sent once.
//
// The methods are written by hand rather than generated from the OpenAPI
// document: there are about twenty, generated code would bring a parallel
// set of types beside package api (which the server itself renders with),
// and hand-written methods read as Go (typed options, one page type per
// list). A test walks the document embedded in package server and fails
// when a documented path and method has no client method, so the client
// cannot fall behind the API.
package client
