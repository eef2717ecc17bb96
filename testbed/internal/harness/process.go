// Package harness starts and stops the testbed's processes (etcd,
// fake-apiserver, watch-load) for testbed-run and the integration tests.
// Every child gets its own process group so it can be stopped, with all its
// children, by pid; nothing is ever killed by name.
package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is a child process in its own process group, with stdout and
// stderr captured to files.
type Process struct {
	Name       string
	StdoutPath string
	StderrPath string
	cmd        *exec.Cmd
	done       chan struct{}
	err        error
}

// Start runs bin with args; output goes to <logDir>/<name>.stdout/.stderr.
func Start(name, logDir, bin string, args ...string) (*Process, error) {
	p := &Process{
		Name:       name,
		StdoutPath: filepath.Join(logDir, name+".stdout"),
		StderrPath: filepath.Join(logDir, name+".stderr"),
		done:       make(chan struct{}),
	}
	stdout, err := os.Create(p.StdoutPath)
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(p.StderrPath)
	if err != nil {
		stdout.Close()
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Own process group (stop the whole tree by pgid); SIGKILL if we die
	// without cleaning up, so nothing outlives a crashed harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit error (nil for exit code 0); valid after Done.
func (p *Process) Err() error { return p.err }

// Wait waits up to d for the process to exit by itself.
func (p *Process) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) still running after %v", p.Name, p.Pid(), d)
	}
}

// Stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL. It returns the exit error of a graceful stop, or an error saying
// the process had to be killed.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return p.err
	}
	pgid := p.Pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		if killedBy(p.err, syscall.SIGTERM) {
			return nil // e.g. etcd re-raises SIGTERM after its cleanup
		}
		return p.err
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s (pid %d) did not stop within %v and was killed", p.Name, pgid, grace)
}

// Tail returns the last n bytes of the process's stderr, for error messages.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.StderrPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// ExitCode returns the exit code, or -1 if unknown.
func (p *Process) ExitCode() int {
	var ee *exec.ExitError
	if p.err == nil {
		return 0
	}
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// killedBy reports whether err is an exit caused by signal sig.
func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
