package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"appnet/internal/labca"
	"appnet/trace"
)

// Options configure a running lab.
type Options struct {
	Ports  Ports         // port policy; see AutoPorts
	Tracer *trace.Tracer // every service reports to it; nil: off
	Logger *slog.Logger  // nil: slog.Default()
	// StateDir holds each host's state in a folder named after the host.
	// Empty: a temporary folder, removed by Shutdown.
	StateDir string
}

// Lab is a running lab: every service of every host of a File.
type Lab struct {
	file     *File
	opts     Options
	running  []*Running
	stateDir string
	tempDir  bool
	ca       *labca.CA
}

// Running is one started service.
type Running struct {
	Host    *Host
	Kind    *Kind
	Service Service
}

// Start starts every service of f, host by host in address order. If one
// fails to start, those already started are stopped and the error says
// which host and service failed.
func Start(ctx context.Context, f *File, opts Options) (*Lab, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Lab{file: f, opts: opts, stateDir: opts.StateDir}
	if l.stateDir == "" {
		dir, err := os.MkdirTemp("", "appnet-lab-")
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		l.stateDir, l.tempDir = dir, true
	}
	ca, err := labca.Open(filepath.Join(l.stateDir, "ca"), "appnet lab CA")
	if err != nil {
		l.stop(ctx)
		return nil, fmt.Errorf("lab: %w", err)
	}
	l.ca = ca
	for _, h := range f.Hosts {
		dir := filepath.Join(l.stateDir, h.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			l.stop(ctx)
			return nil, fmt.Errorf("lab: %w", err)
		}
		for _, sc := range h.Services {
			env := &Env{
				Host:   h.Name,
				Addr:   h.Address,
				Tracer: opts.Tracer,
				Logger: opts.Logger.With("host", h.Name, "service", sc.Kind.Name),
				Dir:    dir,
				Ports:  opts.Ports,
				CA:     ca,
			}
			svc, err := sc.Kind.start(ctx, env, sc.Config)
			if err != nil {
				l.stop(ctx)
				return nil, fmt.Errorf("lab: %s:%d: host %s: starting %s: %w", f.Name, sc.line, h.Name, sc.Kind.Name, err)
			}
			l.running = append(l.running, &Running{Host: h, Kind: sc.Kind, Service: svc})
		}
	}
	return l, nil
}

// Services returns the running services in start order.
func (l *Lab) Services() []*Running { return l.running }

// Shutdown stops every service, the last started first, and removes the
// temporary state folder. It returns the first error.
func (l *Lab) Shutdown(ctx context.Context) error { return l.stop(ctx) }

func (l *Lab) stop(ctx context.Context) error {
	var errs []error
	for i := len(l.running) - 1; i >= 0; i-- {
		r := l.running[i]
		if err := r.Service.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("lab: host %s: stopping %s: %w", r.Host.Name, r.Kind.Name, err))
		}
	}
	l.running = nil
	if l.tempDir {
		if err := os.RemoveAll(l.stateDir); err != nil {
			errs = append(errs, fmt.Errorf("lab: %w", err))
		}
	}
	return errors.Join(errs...)
}

// WriteSummary prints what runs where and the commands to try.
func (l *Lab) WriteSummary(w io.Writer) {
	hosts := "hosts"
	if len(l.file.Hosts) == 1 {
		hosts = "host"
	}
	fmt.Fprintf(w, "appnet lab %s: %d %s\n", l.file.Name, len(l.file.Hosts), hosts)
	if l.opts.Ports.Offset != 0 {
		fmt.Fprintf(w, "(not allowed to bind ports below 1024: each is moved up by %d, so 53 is %d)\n", l.opts.Ports.Offset, l.opts.Ports.Map(53))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tSERVICE\tLISTENS ON")
	for _, r := range l.running {
		for _, ep := range r.Service.Endpoints() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Host.Name, r.Host.Address, ep.Proto, ep.Addr)
		}
	}
	tw.Flush()
	if l.usesTLS() {
		fmt.Fprintf(w, "\nTLS services present certificates of the lab's CA; its root is %s\n", l.ca.RootFile())
		fmt.Fprintf(w, "(curl --cacert %s ..., swaks --tls-ca-path %s ...)\n", l.ca.RootFile(), l.ca.RootFile())
	}
	fmt.Fprintln(w, "\nTry:")
	for _, r := range l.running {
		for _, c := range r.Service.Try() {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
}

// CA returns the lab's certificate authority.
func (l *Lab) CA() *labca.CA { return l.ca }

// usesTLS reports whether some service was issued a certificate.
func (l *Lab) usesTLS() bool { return l.ca != nil && l.ca.Issued() > 0 }

// CheckResult is one line of the check table.
type CheckResult struct {
	Host  string
	Kind  string
	Probe Probe
	Took  time.Duration
}

// CheckTimeout bounds each service's probes.
const CheckTimeout = 15 * time.Second

// Check probes every service once, all at the same time, and returns the
// results in start order.
func (l *Lab) Check(ctx context.Context) []CheckResult {
	results := make([][]CheckResult, len(l.running))
	var wg sync.WaitGroup
	for i, r := range l.running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			start := time.Now()
			probes := r.Service.Check(cctx)
			took := time.Since(start)
			if len(probes) == 0 {
				probes = []Probe{{What: r.Kind.Name, Err: errors.New("the service has no probe")}}
			}
			for _, p := range probes {
				results[i] = append(results[i], CheckResult{Host: r.Host.Name, Kind: r.Kind.Name, Probe: p, Took: took})
			}
		}()
	}
	wg.Wait()
	var out []CheckResult
	for _, rs := range results {
		out = append(out, rs...)
	}
	return out
}

// WriteChecks prints the check table and returns the number of failures.
func WriteChecks(w io.Writer, results []CheckResult) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCHECK\tRESULT\tDETAIL")
	failed := 0
	for _, r := range results {
		status, detail := "OK", r.Probe.Detail
		if r.Probe.Err != nil {
			status, detail = "FAIL", r.Probe.Err.Error()
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Host, r.Probe.What, status, strings.ReplaceAll(detail, "\n", " "))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nchecks: %d passed, %d failed\n", len(results)-failed, failed)
	return failed
}
