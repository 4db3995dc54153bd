package task

// Level is a log entry's severity.
type Level string

// Log levels, in increasing severity.
const (
	LevelDebug Level = "debug"
	LevelInfo  Level = "info"
	LevelWarn  Level = "warn"
	LevelError Level = "error"
)

// Levels lists every level.
var Levels = []Level{LevelDebug, LevelInfo, LevelWarn, LevelError}
