package devserver

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.temporal.io/api/serviceerror"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// fatalError is the panic value of serverLogger.Fatal. Temporal calls
// Logger.Fatal for conditions such as "cannot listen on a port" and then
// carries on with nil values; the zap logger would os.Exit instead. Panicking
// lets Start recover and return an error when this happens on its goroutine.
type fatalError struct {
	msg  string
	tags []tag.Tag
}

func (e fatalError) Error() string {
	s := "temporal server fatal error: " + e.msg
	for _, t := range e.tags {
		s += fmt.Sprintf(" %s=%v", t.Key(), t.Value())
	}
	return s
}

// serverLogger adapts a zap.Logger to Temporal's server log.Logger. It drops
// everything below warn level (Temporal's info logging is very chatty), a few
// known-harmless warnings, and everything once the server is being stopped
// (shutdown produces a burst of "context canceled" / "connection closed"
// errors from pollers and queues that mean nothing).
type serverLogger struct {
	zl *zap.Logger
	*logState
}

type logState struct {
	// quiet drops everything; set when Stop begins.
	quiet atomic.Bool
	// starting is set until Start has seen the namespace become usable.
	// Meanwhile the worker service's per-namespace workers warn that the
	// freshly registered namespace "is not found"; those warnings are
	// dropped.
	starting atomic.Bool
}

// ignoredMessage reports Temporal warnings that are expected in this setup.
func ignoredMessage(msg string) bool {
	switch {
	case strings.HasPrefix(msg, "HTTP API port has not been set"):
		// The frontend HTTP API (used for Nexus) is deliberately not started.
		return true
	case strings.HasPrefix(msg, "Search attribute ") && strings.HasSuffix(msg, " already exists."):
		// Concurrent temporalutil.EnsureSearchAttributes callers.
		return true
	}
	return false
}

func (l serverLogger) drop(msg string, tags []tag.Tag) bool {
	if l.quiet.Load() {
		return true
	}
	if l.starting.Load() && namespaceNotFound(tags) {
		return true
	}
	return ignoredMessage(msg)
}

var _ log.Logger = serverLogger{}
var _ log.WithLogger = serverLogger{}

func newServerLogger(zl *zap.Logger) serverLogger {
	zl = zl.Named("temporal").WithOptions(zap.AddCallerSkip(1))
	// IncreaseLevel can only raise the level; only apply it when the core
	// would otherwise let info/debug through.
	if zl.Core().Enabled(zapcore.InfoLevel) {
		zl = zl.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	}
	l := serverLogger{zl: zl, logState: &logState{}}
	l.starting.Store(true)
	return l
}

func namespaceNotFound(tags []tag.Tag) bool {
	for _, t := range tags {
		zt, ok := t.(tag.ZapTag)
		if !ok || zt.Field().Type != zapcore.ErrorType {
			continue
		}
		if err, ok := zt.Field().Interface.(error); ok {
			var nf *serviceerror.NamespaceNotFound
			if errors.As(err, &nf) {
				return true
			}
		}
	}
	return false
}

func fields(tags []tag.Tag) []zap.Field {
	fs := make([]zap.Field, len(tags))
	for i, t := range tags {
		if zt, ok := t.(tag.ZapTag); ok {
			fs[i] = zt.Field()
		} else {
			fs[i] = zap.Any(t.Key(), t.Value())
		}
	}
	return fs
}

func (l serverLogger) Debug(string, ...tag.Tag) {}
func (l serverLogger) Info(string, ...tag.Tag)  {}

func (l serverLogger) Warn(msg string, tags ...tag.Tag) {
	if l.drop(msg, tags) {
		return
	}
	if ce := l.zl.Check(zapcore.WarnLevel, msg); ce != nil {
		ce.Write(fields(tags)...)
	}
}

func (l serverLogger) Error(msg string, tags ...tag.Tag) {
	if l.drop(msg, tags) {
		return
	}
	if ce := l.zl.Check(zapcore.ErrorLevel, msg); ce != nil {
		ce.Write(fields(tags)...)
	}
}

// DPanic logs at error level; it never panics.
func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.Error(msg, tags...) }

func (l serverLogger) Panic(msg string, tags ...tag.Tag) {
	l.Error(msg, tags...)
	panic(msg)
}

func (l serverLogger) Fatal(msg string, tags ...tag.Tag) {
	l.Error(msg, tags...)
	panic(fatalError{msg: msg, tags: tags})
}

func (l serverLogger) With(tags ...tag.Tag) log.Logger {
	return serverLogger{zl: l.zl.With(fields(tags)...), logState: l.logState}
}

// sdkLogger adapts a zap.Logger to the Temporal SDK's log.Logger, keeping
// only warnings and errors. It is used for the client Start uses internally.
type sdkLogger struct {
	s *zap.SugaredLogger
}

var _ sdklog.Logger = sdkLogger{}

func newSDKLogger(zl *zap.Logger) sdkLogger {
	return sdkLogger{s: zl.Named("temporal-client").WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (l sdkLogger) Debug(string, ...any)             {}
func (l sdkLogger) Info(string, ...any)              {}
func (l sdkLogger) Warn(msg string, keyvals ...any)  { l.s.Warnw(msg, keyvals...) }
func (l sdkLogger) Error(msg string, keyvals ...any) { l.s.Errorw(msg, keyvals...) }
