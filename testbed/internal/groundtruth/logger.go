package groundtruth

import (
	"time"

	"watchtrace/testbed/internal/jsonl"
)

// Logger writes ground-truth records. A nil *Logger discards records.
type Logger struct{ w *jsonl.Writer }

// Create truncates or creates path and returns a Logger writing to it.
func Create(path string) (*Logger, error) {
	w, err := jsonl.Create(path)
	if err != nil {
		return nil, err
	}
	return &Logger{w: w}, nil
}

// Log appends one record.
func (l *Logger) Log(r *Record) {
	if l != nil {
		l.w.Write(r)
	}
}

// Close flushes and closes the log.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	return l.w.Close()
}

// Now returns the current time as Unix nanoseconds, the log's time base.
func Now() int64 { return time.Now().UnixNano() }
