// Package temporalutil holds small, idempotent helpers for preparing a
// Temporal cluster for terratask: registering the namespace, registering the
// custom search attributes terratask queries on, and waiting until both are
// usable.
//
// Every helper is safe to call on every process start and from several
// processes at once: work that is already done is detected and skipped.
package temporalutil

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultRetention is the workflow history retention EnsureNamespace uses
// when it is given a retention <= 0.
const DefaultRetention = 72 * time.Hour

// Polling bounds shared by the helpers. Callers bound total time with ctx.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second

	// notFoundGrace is how long EnsureSearchAttributes retries a
	// "namespace not found" answer.
	notFoundGrace = 10 * time.Second
)

// EnsureNamespace registers namespace with the given workflow retention if it
// does not exist yet. An existing namespace is left untouched (its retention
// is not changed). Concurrent callers are fine: "already exists" counts as
// success.
//
// A newly registered namespace may not be usable by every API immediately;
// use WaitForNamespaceReady afterwards.
func EnsureNamespace(ctx context.Context, c client.Client, namespace string, retention time.Duration) error {
	if c == nil {
		return errors.New("temporalutil: nil client")
	}
	return ensureNamespace(ctx, c.WorkflowService(), namespace, retention)
}

func ensureNamespace(ctx context.Context, ws workflowservice.WorkflowServiceClient, namespace string, retention time.Duration) error {
	if namespace == "" {
		return errors.New("temporalutil: empty namespace name")
	}
	if retention <= 0 {
		retention = DefaultRetention
	}

	_, err := ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	if err == nil {
		return nil
	}
	var notFound *serviceerror.NamespaceNotFound
	if !errors.As(err, &notFound) && !isNotFound(err) {
		if isPermissionDenied(err) {
			return namespacePermissionError(namespace, retention, err)
		}
		return fmt.Errorf("describe namespace %q: %w", namespace, err)
	}

	_, err = ws.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        namespace,
		Description:                      "registered by terratask",
		WorkflowExecutionRetentionPeriod: durationpb.New(retention),
	})
	if err == nil {
		return nil
	}
	var exists *serviceerror.NamespaceAlreadyExists
	if errors.As(err, &exists) {
		return nil // a concurrent caller won the race
	}
	if isPermissionDenied(err) {
		return namespacePermissionError(namespace, retention, err)
	}
	return fmt.Errorf("register namespace %q: %w", namespace, err)
}

func namespacePermissionError(namespace string, retention time.Duration, err error) error {
	return fmt.Errorf("not allowed to register Temporal namespace %q (%w); an operator must run:\n  temporal operator namespace create --namespace %s --retention %s",
		namespace, err, shellQuote(namespace), retention)
}

// SearchAttributePermissionError is returned by EnsureSearchAttributes when the
// caller may not list or add search attributes. Its message names the exact
// commands an operator has to run.
type SearchAttributePermissionError struct {
	Namespace string
	// Missing are the attributes that could not be verified or registered.
	Missing []string
	// Err is the error the server returned.
	Err error
}

// Commands returns one `temporal operator search-attribute create` command per
// missing attribute.
func (e *SearchAttributePermissionError) Commands() []string {
	cmds := make([]string, 0, len(e.Missing))
	for _, name := range e.Missing {
		cmds = append(cmds, fmt.Sprintf("temporal operator search-attribute create --name %s --type Keyword --namespace %s",
			shellQuote(name), shellQuote(e.Namespace)))
	}
	return cmds
}

func (e *SearchAttributePermissionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "not allowed to check or register search attributes in Temporal namespace %q (%v); an operator must run:", e.Namespace, e.Err)
	for _, cmd := range e.Commands() {
		b.WriteString("\n  ")
		b.WriteString(cmd)
	}
	return b.String()
}

func (e *SearchAttributePermissionError) Unwrap() error { return e.Err }

// EnsureSearchAttributes makes sure every name in names is registered as a
// custom search attribute of type Keyword in namespace. Attributes that
// already exist are skipped; an existing attribute of another type is an
// error. Concurrent callers are tolerated: races reported by the server are
// retried until ctx ends.
//
// If the caller lacks permission, the error is a
// *SearchAttributePermissionError whose message lists the
// `temporal operator search-attribute create` commands an operator must run.
//
// On SQL visibility stores a newly added attribute becomes usable in queries
// and upserts only after the server's namespace cache refreshes; use
// WaitForSearchAttributes to wait for that.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string, names []string) error {
	if c == nil {
		return errors.New("temporalutil: nil client")
	}
	return ensureSearchAttributes(ctx, c.OperatorService(), namespace, names)
}

// searchAttributeName matches the names Temporal accepts for custom search
// attributes (and that can be used unquoted in list queries).
var searchAttributeName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateSearchAttributeNames checks that names are non-empty, unique and
// plain identifiers.
func ValidateSearchAttributeNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if !searchAttributeName.MatchString(n) {
			return fmt.Errorf("invalid search attribute name %q: use letters, digits and underscores, not starting with a digit", n)
		}
		if seen[n] {
			return fmt.Errorf("duplicate search attribute name %q", n)
		}
		seen[n] = true
	}
	return nil
}

func ensureSearchAttributes(ctx context.Context, op operatorservice.OperatorServiceClient, namespace string, names []string) error {
	if namespace == "" {
		return errors.New("temporalutil: empty namespace name")
	}
	if err := ValidateSearchAttributeNames(names); err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}

	backoff := minBackoff
	var lastErr error
	// Right after registration the namespace can be reported missing for up
	// to the server's namespace cache refresh interval; retry that briefly.
	notFoundUntil := time.Now().Add(notFoundGrace)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, backoff); err != nil {
				return fmt.Errorf("registering search attributes %v in namespace %q: %w (last error: %v)", names, namespace, err, lastErr)
			}
			backoff = min(2*backoff, maxBackoff)
		}

		missing, err := missingSearchAttributes(ctx, op, namespace, names)
		if err != nil {
			if isPermissionDenied(err) {
				return &SearchAttributePermissionError{Namespace: namespace, Missing: slices.Clone(names), Err: err}
			}
			if (isRetryable(err) || isNotFound(err) && time.Now().Before(notFoundUntil)) && ctx.Err() == nil {
				lastErr = err
				continue
			}
			return err
		}
		if len(missing) == 0 {
			return nil
		}

		req := &operatorservice.AddSearchAttributesRequest{
			Namespace:        namespace,
			SearchAttributes: make(map[string]enumspb.IndexedValueType, len(missing)),
		}
		for _, n := range missing {
			req.SearchAttributes[n] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
		_, err = op.AddSearchAttributes(ctx, req)
		switch {
		case err == nil:
			// Loop once more: the next listing confirms the result.
		case isPermissionDenied(err):
			return &SearchAttributePermissionError{Namespace: namespace, Missing: missing, Err: err}
		case isAlreadyExists(err), isRetryable(err), isNotFound(err) && time.Now().Before(notFoundUntil):
			// A concurrent caller registered some of them, or the server
			// reported a mapping race; re-list and try again.
			if ctx.Err() != nil {
				return fmt.Errorf("add search attributes %v in namespace %q: %w", missing, namespace, err)
			}
		default:
			return fmt.Errorf("add search attributes %v in namespace %q: %w", missing, namespace, err)
		}
		lastErr = err
	}
}

// missingSearchAttributes returns the names (sorted) not yet registered in
// namespace, or an error if one of them exists with a type other than
// Keyword.
func missingSearchAttributes(ctx context.Context, op operatorservice.OperatorServiceClient, namespace string, names []string) ([]string, error) {
	resp, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes in namespace %q: %w", namespace, err)
	}
	var missing []string
	for _, n := range names {
		if t, ok := resp.GetSystemAttributes()[n]; ok {
			return nil, fmt.Errorf("search attribute %q is a Temporal system attribute (type %s)", n, t)
		}
		t, ok := resp.GetCustomAttributes()[n]
		switch {
		case !ok:
			missing = append(missing, n)
		case t != enumspb.INDEXED_VALUE_TYPE_KEYWORD:
			return nil, fmt.Errorf("search attribute %q already exists in namespace %q with type %s, want Keyword", n, namespace, t)
		}
	}
	sort.Strings(missing)
	return missing, nil
}

// WaitForNamespaceReady polls until namespace answers a cheap read through
// the server's namespace cache (a one-row visibility listing), or ctx ends.
// Right after registration such calls can fail with NamespaceNotFound for up
// to the server's namespace cache refresh interval.
func WaitForNamespaceReady(ctx context.Context, c client.Client, namespace string) error {
	if c == nil {
		return errors.New("temporalutil: nil client")
	}
	return waitForQuery(ctx, c.WorkflowService(), namespace, "")
}

// WaitForSearchAttributes polls until a visibility query that filters on
// every name in names is accepted in namespace, or ctx ends. On SQL
// visibility stores a freshly added search attribute is rejected as unknown
// until the server's namespace cache refreshes.
func WaitForSearchAttributes(ctx context.Context, c client.Client, namespace string, names []string) error {
	if c == nil {
		return errors.New("temporalutil: nil client")
	}
	if err := ValidateSearchAttributeNames(names); err != nil {
		return err
	}
	if len(names) == 0 {
		return WaitForNamespaceReady(ctx, c, namespace)
	}
	clauses := make([]string, len(names))
	for i, n := range names {
		clauses[i] = fmt.Sprintf("%s = 'terratask-probe'", n)
	}
	return waitForQuery(ctx, c.WorkflowService(), namespace, strings.Join(clauses, " AND "))
}

func waitForQuery(ctx context.Context, ws workflowservice.WorkflowServiceClient, namespace, query string) error {
	backoff := minBackoff
	for {
		_, err := ws.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace,
			PageSize:  1,
			Query:     query,
		})
		if err == nil {
			return nil
		}
		if isPermissionDenied(err) {
			return fmt.Errorf("waiting for namespace %q: %w", namespace, err)
		}
		if serr := sleep(ctx, backoff); serr != nil {
			if query != "" {
				return fmt.Errorf("waiting for namespace %q to accept query %q: %w (last error: %v)", namespace, query, serr, err)
			}
			return fmt.Errorf("waiting for namespace %q: %w (last error: %v)", namespace, serr, err)
		}
		backoff = min(2*backoff, maxBackoff/2)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func code(err error) codes.Code {
	return serviceerror.ToStatus(err).Code()
}

func isPermissionDenied(err error) bool {
	c := code(err)
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

func isNotFound(err error) bool {
	return code(err) == codes.NotFound
}

func isAlreadyExists(err error) bool {
	return code(err) == codes.AlreadyExists
}

func isRetryable(err error) bool {
	switch code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded:
		return true
	}
	return false
}

// shellQuote quotes s for a POSIX shell if it contains anything beyond a
// conservative set of safe characters.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
