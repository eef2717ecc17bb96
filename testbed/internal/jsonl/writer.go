// Package jsonl writes JSON-lines logs with buffered, periodically flushed
// output, shared by the fake apiserver's ground truth and watch-load's
// receive log.
package jsonl

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	"time"
)

// Writer appends one JSON value per line. It is safe for concurrent use and
// nil-safe (a nil *Writer discards everything), which keeps unit tests free
// of log plumbing.
type Writer struct {
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	err    error
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// flushInterval bounds how much a killed process can lose.
const flushInterval = 100 * time.Millisecond

// Create truncates or creates path.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, w: bufio.NewWriterSize(f, 1<<20), stop: make(chan struct{}), done: make(chan struct{})}
	go w.flushLoop()
	return w, nil
}

func (w *Writer) flushLoop() {
	defer close(w.done)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			if !w.closed && w.err == nil {
				w.err = w.w.Flush()
			}
			w.mu.Unlock()
		}
	}
}

// Write appends v as one line. Errors are sticky and reported by Close.
func (w *Writer) Write(v any) {
	if w == nil {
		return
	}
	b, err := json.Marshal(v)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.err != nil {
		return
	}
	if err != nil {
		w.err = err
		return
	}
	b = append(b, '\n')
	_, w.err = w.w.Write(b)
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.err
	}
	w.closed = true
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if cerr := w.f.Close(); w.err == nil {
		w.err = cerr
	}
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.err
}
