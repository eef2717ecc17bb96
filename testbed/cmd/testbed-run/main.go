// testbed-run starts a complete testbed — etcd (optionally with TLS),
// fake-apiserver and watch-load — waits for the load to finish (or, with
// -keep-running, for SIGINT/SIGTERM), prints where the ground-truth log and
// the summaries are, and stops everything it started by process group.
// Arguments after "--" are passed to watch-load, after defaultLoad.
//
//	testbed-run -duration 30s -- -conns 4 -write-rate 50 -stall-conn-for 5s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/harness"
	"watchtrace/testbed/internal/loadgen"
	"watchtrace/testbed/internal/verify"
)

// defaultLoad is the acceptance scenario (20 connections x 10 watches, 200
// etcd writes/s over two resources and four namespaces plus all-namespace
// watches), so that a bare run, and the demo, have real traffic. Flags after
// "--" come later on watch-load's command line and so override these.
var defaultLoad = []string{
	"-conns", "20", "-watches-per-conn", "10",
	"-resources", "configmaps,secrets", "-namespaces", "ns-0,ns-1,ns-2,ns-3,*",
	"-write-rate", "200", "-format", "mixed", "-drain", "20s",
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	dir         string
	binDir      string
	duration    time.Duration
	keepRunning bool
	noLoad      bool
	loadDelay   time.Duration
	etcdTLS     bool
	progress    time.Duration
	verify      bool
	apiArgs     stringList
	loadArgs    []string
}

// result is written to <dir>/testbed-run.json and printed at the end.
type result struct {
	Dir            string         `json:"dir"`
	EtcdEndpoint   string         `json:"etcd_endpoint"`
	StateDir       string         `json:"state_dir"`
	HTTPSAddr      string         `json:"https_addr"`
	H2CAddr        string         `json:"h2c_addr,omitempty"`
	Kubeconfig     string         `json:"kubeconfig"`
	GroundTruthLog string         `json:"ground_truth_log"`
	LoadLog        string         `json:"load_log,omitempty"`
	LoadSummary    string         `json:"load_summary,omitempty"`
	LoadExitCode   int            `json:"load_exit_code"`
	Verify         *verify.Report `json:"verify,omitempty"`
	OK             bool           `json:"ok"`
	Error          string         `json:"error,omitempty"`
}

func main() {
	o := &options{}
	flag.StringVar(&o.dir, "dir", "", "work directory (etcd data, state, logs); default: a new temp dir (under /dev/shm when available, so etcd fsyncs are cheap)")
	flag.StringVar(&o.binDir, "bin", "", "directory with fake-apiserver and watch-load; default: next to this binary")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "watch-load duration (its -duration)")
	flag.BoolVar(&o.keepRunning, "keep-running", false, "run until SIGINT/SIGTERM (load runs until then unless -no-load)")
	flag.BoolVar(&o.noLoad, "no-load", false, "start etcd and fake-apiserver only")
	flag.DurationVar(&o.loadDelay, "load-delay", 0, "wait this long after fake-apiserver is up before starting watch-load (lets a tracer attach first)")
	flag.BoolVar(&o.etcdTLS, "etcd-tls", false, "run etcd with TLS and client-certificate auth")
	flag.DurationVar(&o.progress, "etcd-progress-interval", 0, "etcd --experimental-watch-progress-notify-interval (0: etcd default 10m)")
	flag.BoolVar(&o.verify, "verify", true, "after the load, check the ground truth against etcd and watch-load (skipped with -keep-running)")
	flag.Var(&o.apiArgs, "apiserver-arg", "extra fake-apiserver flag (repeatable), e.g. -apiserver-arg=-dispatch-delay=5ms or -apiserver-arg=-gzip-min-bytes=1")
	flag.Usage = usage
	flag.Parse()
	o.loadArgs = flag.Args()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if err != nil {
		res.Error = err.Error()
		fmt.Fprintln(os.Stderr, "testbed-run:", err)
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(out))
	if res.Dir != "" {
		_ = os.WriteFile(filepath.Join(res.Dir, "testbed-run.json"), append(out, '\n'), 0o644)
	}
	if !res.OK {
		os.Exit(1)
	}
}

func usage() {
	out := flag.CommandLine.Output()
	fmt.Fprintf(out, `Usage: testbed-run [flags] [-- watch-load flags]

Starts etcd, fake-apiserver and watch-load on loopback, prints the addresses
and the ground-truth log path on stderr and a JSON result on stdout, and stops
everything on exit, SIGINT or SIGTERM.

Default watch-load flags: %s
Flags after "--" are appended and override those (see watch-load -h), e.g.
  testbed-run -duration 20s -- -conns 4 -write-rate 50 -stall-conn-for 5s

Flags:
`, strings.Join(defaultLoad, " "))
	flag.PrintDefaults()
}

func run(ctx context.Context, o *options) (res *result, err error) {
	res = &result{}
	if o.binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return res, err
		}
		o.binDir = filepath.Dir(exe)
	}
	apiBin := filepath.Join(o.binDir, "fake-apiserver")
	loadBin := filepath.Join(o.binDir, "watch-load")
	for _, b := range []string{apiBin, loadBin} {
		if _, err := os.Stat(b); err != nil {
			return res, fmt.Errorf("%s missing (build with: go build -o bin/ ./cmd/...): %w", b, err)
		}
	}
	if o.dir == "" {
		base := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			base = "/dev/shm"
		}
		if o.dir, err = os.MkdirTemp(base, "watchtrace-testbed-"); err != nil {
			return res, err
		}
	} else if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return res, err
	}
	res.Dir = o.dir
	logDir := filepath.Join(o.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return res, err
	}

	etcd, err := harness.StartEtcd(harness.EtcdOptions{Dir: filepath.Join(o.dir, "etcd"), TLS: o.etcdTLS, ProgressNotifyInterval: o.progress})
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := etcd.Stop(10 * time.Second); serr != nil && err == nil {
			err = fmt.Errorf("etcd stop: %w", serr)
			res.OK = false
		}
		// etcd preallocates 64 MiB of WAL, in RAM when under /dev/shm, and
		// nothing reads its data after the run; its logs stay.
		os.RemoveAll(etcd.DataDir)
	}()
	res.EtcdEndpoint = etcd.Endpoint
	fmt.Fprintf(os.Stderr, "testbed-run: etcd %s (pid %d)\n", etcd.Endpoint, etcd.Pid())

	stateDir := filepath.Join(o.dir, "state")
	api, err := harness.StartAPIServer(apiBin, stateDir, logDir, 30*time.Second, append(etcd.APIServerFlags(), o.apiArgs...)...)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := api.Stop(15 * time.Second); serr != nil && err == nil {
			err = fmt.Errorf("fake-apiserver stop: %w; stderr: %s", serr, api.Tail(1000))
			res.OK = false
		}
	}()
	st := api.State
	res.StateDir, res.HTTPSAddr, res.H2CAddr = stateDir, st.HTTPSAddr, st.H2CAddr
	res.Kubeconfig, res.GroundTruthLog = st.Kubeconfig, st.GroundTruthLog
	fmt.Fprintf(os.Stderr, "testbed-run: fake-apiserver https=%s h2c=%s (pid %d)\n", st.HTTPSAddr, st.H2CAddr, api.Pid())
	fmt.Fprintf(os.Stderr, "testbed-run: ground-truth log %s\n", st.GroundTruthLog)
	fmt.Fprintf(os.Stderr, "testbed-run: kubeconfig %s\n", st.Kubeconfig)

	if o.noLoad {
		if !o.keepRunning {
			res.OK = true
			return res, nil
		}
		return res, waitSignal(ctx, res, api.Process, etcd.Process)
	}

	if o.loadDelay > 0 {
		select {
		case <-time.After(o.loadDelay):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.LoadLog = filepath.Join(o.dir, "watch-load.jsonl")
	res.LoadSummary = filepath.Join(o.dir, "watch-load-summary.json")
	duration := o.duration
	if o.keepRunning {
		duration = 365 * 24 * time.Hour // until signalled
	}
	args := append([]string{
		"-state-dir", stateDir, "-log", res.LoadLog, "-summary", res.LoadSummary, "-duration", duration.String(),
	}, etcdLoadFlags(etcd)...)
	args = append(args, defaultLoad...)
	args = append(args, o.loadArgs...)
	load, err := harness.Start("watch-load", logDir, loadBin, args...)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "testbed-run: watch-load (pid %d), log %s\n", load.Pid(), res.LoadLog)
	if o.keepRunning {
		fmt.Fprintln(os.Stderr, "testbed-run: running until SIGINT/SIGTERM")
	}
	defer load.Stop(30 * time.Second) // no-op when it has exited
	select {
	case <-load.Done():
	case <-api.Done():
		return res, fmt.Errorf("fake-apiserver exited during the load: %v; stderr: %s", api.Err(), api.Tail(1000))
	case <-etcd.Done():
		return res, fmt.Errorf("etcd exited during the load: %v", etcd.Err())
	case <-ctx.Done():
		// Signalled: let watch-load print its summary, then stop the rest.
		load.Stop(30 * time.Second)
	}
	res.LoadExitCode = load.ExitCode()
	fmt.Fprintf(os.Stderr, "testbed-run: watch-load exit %d, summary %s\n", res.LoadExitCode, res.LoadSummary)
	if ctx.Err() != nil && !o.keepRunning {
		return res, fmt.Errorf("interrupted before the load finished")
	}
	if res.LoadExitCode != 0 {
		return res, fmt.Errorf("watch-load failed (exit %d): %s", res.LoadExitCode, load.Tail(2000))
	}
	if o.verify && !o.keepRunning {
		// The ground truth is complete only once the server has stopped.
		if err := api.Stop(15 * time.Second); err != nil {
			return res, fmt.Errorf("fake-apiserver stop: %w", err)
		}
		rep, err := check(res)
		if err != nil {
			return res, err
		}
		res.Verify = rep
		fmt.Fprintf(os.Stderr, "testbed-run: verify: %d etcd events, %d streams, expected %d, written %d, missing %d, problems %d\n",
			rep.EtcdEvents, rep.Streams, rep.Expected, rep.Written, rep.Missing, len(rep.Problems))
		if rep.APIWrites+rep.APIConflicts+rep.APIFailures > 0 {
			fmt.Fprintf(os.Stderr, "testbed-run: verify: api writes %d committed, %d conflicts (409), %d other failures, %d not seen from etcd\n",
				rep.APIWrites, rep.APIConflicts, rep.APIFailures, rep.APIWritesNotSeen)
		}
		if len(rep.Problems) > 0 {
			return res, fmt.Errorf("verification failed: %s", rep.Problems[0])
		}
	}
	res.OK = true
	return res, nil
}

func check(res *result) (*verify.Report, error) {
	gt, err := groundtruth.ReadFile(res.GroundTruthLog)
	if err != nil {
		return nil, err
	}
	ops, err := verify.ReadOps(res.LoadLog)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(res.LoadSummary)
	if err != nil {
		return nil, err
	}
	var sum loadgen.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		return nil, fmt.Errorf("%s: %w", res.LoadSummary, err)
	}
	return verify.Check(verify.Input{GroundTruth: gt, Ops: ops, Summary: &sum}), nil
}

func etcdLoadFlags(e *harness.Etcd) []string {
	f := []string{"-etcd", e.Endpoint}
	if e.CAFile != "" {
		f = append(f, "-etcd-ca", e.CAFile, "-etcd-cert", e.ClientCert, "-etcd-key", e.ClientKey)
	}
	return f
}

func waitSignal(ctx context.Context, res *result, api, etcd *harness.Process) error {
	fmt.Fprintln(os.Stderr, "testbed-run: running until SIGINT/SIGTERM")
	select {
	case <-ctx.Done():
		res.OK = true
		return nil
	case <-api.Done():
		return fmt.Errorf("fake-apiserver exited: %v; stderr: %s", api.Err(), api.Tail(1000))
	case <-etcd.Done():
		return fmt.Errorf("etcd exited: %v; stderr: %s", etcd.Err(), etcd.Tail(1000))
	}
}
