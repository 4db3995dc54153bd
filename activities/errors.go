package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

// stepError is a step failure before it becomes a Temporal application
// error (see stepRun.finish): a task error code, whether a retry may help,
// and Terraform's diagnostics.
type stepError struct {
	code      string
	msg       string
	retryable bool
	cause     error
	diags     []task.Diagnostic
}

func (e *stepError) Error() string { return e.msg }
func (e *stepError) Unwrap() error { return e.cause }

// configErrorf is a problem with what the task asked for.
func configErrorf(format string, args ...any) *stepError {
	return &stepError{code: task.CodeConfig, msg: fmt.Sprintf(format, args...)}
}

// transientError is a failure of this host (disk, store) that a retry may
// fix.
func transientError(what string, err error) *stepError {
	return &stepError{code: task.CodeInternal, msg: what + ": " + err.Error(), retryable: true, cause: err}
}

// internalErrorf is a broken invariant a retry cannot fix (a step run out of
// order).
func internalErrorf(format string, args ...any) *stepError {
	return &stepError{code: task.CodeInternal, msg: fmt.Sprintf(format, args...)}
}

// terraformError is a failed Terraform command. Its message names the
// command and the first error diagnostic; without diagnostics (Terraform
// crashed, or wrote only to stderr) the command's own error is used.
func terraformError(code, command string, err error, diags []task.Diagnostic) *stepError {
	msg := "terraform " + command + " failed"
	// The first error that points somewhere says most; init's generic
	// "problems with the configuration" error comes without a place.
	var first *task.Diagnostic
	for i := range diags {
		d := &diags[i]
		if d.Severity != "error" {
			continue
		}
		if first == nil || (first.File == "" && first.Address == "" && (d.File != "" || d.Address != "")) {
			first = d
		}
	}
	if first != nil {
		msg += ": " + firstLine(first.Summary)
		if first.Address != "" {
			msg += " (" + first.Address + ")"
		} else if first.File != "" {
			msg += fmt.Sprintf(" (%s:%d)", first.File, first.Line)
		}
	}
	if len(diags) == 0 && err != nil {
		msg += ": " + firstLine(err.Error())
	}
	return &stepError{code: code, msg: msg, cause: err, diags: diags}
}

// toApplicationError turns a step failure into what the activity returns:
// an application error whose details are a task.Error with the step and the
// diagnostics. Every string is masked. Errors of unknown kind are treated as
// transient.
func toApplicationError(err error, step task.Step, m *secret.Masker) error {
	var se *stepError
	if !errors.As(err, &se) {
		se = &stepError{code: task.CodeInternal, msg: err.Error(), retryable: true, cause: err}
	}
	msg := m.String(se.msg)
	diags := make([]task.Diagnostic, 0, len(se.diags))
	for _, d := range se.diags {
		d.Summary, d.Detail, d.Address, d.File = m.String(d.Summary), m.String(d.Detail), m.String(d.Address), m.String(d.File)
		diags = append(diags, d)
	}
	te := task.Error{Code: se.code, Message: msg, Details: map[string]any{
		"step":        string(step),
		"diagnostics": diags,
	}}
	var cause error
	if se.cause != nil {
		// The cause travels as text only, masked: Terraform's stderr may
		// quote values.
		cause = errors.New(m.String(se.cause.Error()))
	}
	if se.retryable {
		return temporal.NewApplicationErrorWithCause(msg, se.code, cause, te)
	}
	return temporal.NewNonRetryableApplicationError(msg, se.code, cause, te)
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
