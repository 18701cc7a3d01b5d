package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"appnet/lab"
)

func init() { addCommand((*app).labCommand) }

func (a *app) labCommand() *cobra.Command {
	var (
		check, printDefault, kinds bool
		portOffset                 int
		stateDir                   string
	)
	cmd := &cobra.Command{
		Use:   "lab [--check] [LABFILE]",
		Short: "run a small Internet on this machine (the embedded default, or LABFILE)",
		Long: `Lab starts every host of a lab file, each an address in 127.0.0.0/8 running
appnet services, prints what runs where and commands to try, and runs until
Ctrl-C. With no LABFILE it runs the embedded default (see --print-default).

Standard ports below 1024 are used when this process may bind them (root);
otherwise each is moved up by 10000 (53 -> 10053), or by --port-offset.

--check starts everything, probes each service once as a client would, prints
a table of OK/FAIL, stops, and exits 1 if any probe failed. --trace shows
every protocol message of every host.`,
		Example: `  appnet lab --check                     # start, probe everything, stop
  appnet lab                             # run the default lab until Ctrl-C
  appnet lab --print-default > my.toml   # a lab file to edit; then: appnet lab my.toml`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if printDefault {
				_, err := a.stdout.Write(lab.DefaultSource())
				return err
			}
			if kinds {
				for _, k := range lab.Kinds() {
					fmt.Fprintf(a.stdout, "%-12s %s\n", k.Name, k.Doc)
				}
				return nil
			}
			f := lab.Default()
			if len(args) == 1 {
				var err error
				if f, err = lab.Load(args[0]); err != nil {
					return err
				}
			}
			ports := lab.AutoPorts()
			if cmd.Flags().Changed("port-offset") {
				if portOffset < 0 || portOffset > 64000 {
					return usagef("--port-offset %d: want 0 to 64000", portOffset)
				}
				ports = lab.Ports{Offset: portOffset}
			}
			return a.runLab(cmd.Context(), f, lab.Options{Ports: ports, Tracer: a.tracer, Logger: a.logger, StateDir: stateDir}, check)
		},
	}
	// In a lab many hosts talk at once: the transcript names the host and
	// the time of each message.
	cmd.Annotations = map[string]string{traceFull: "yes"}
	fl := cmd.Flags()
	fl.BoolVar(&check, "check", false, "start everything, probe each service once, print OK/FAIL, stop")
	fl.IntVar(&portOffset, "port-offset", lab.PrivilegedOffset, "add this to ports below 1024 (default: 0 as root, else 10000)")
	fl.StringVar(&stateDir, "state", "", "keep the hosts' state (queues, zones, downloads) in this folder (default: a temporary one)")
	fl.BoolVar(&printDefault, "print-default", false, "print the embedded default lab file and exit")
	fl.BoolVar(&kinds, "kinds", false, "list the kinds of service a lab file can run and exit")
	return cmd
}

func (a *app) runLab(ctx context.Context, f *lab.File, opts lab.Options, check bool) error {
	l, err := lab.Start(ctx, f, opts)
	if err != nil {
		return err
	}
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return l.Shutdown(sctx)
	}
	l.WriteSummary(a.stdout)
	if check {
		fmt.Fprintln(a.stdout)
		failed := lab.WriteChecks(a.stdout, l.Check(ctx))
		if err := stop(); err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("lab: %d of the checks failed", failed)
		}
		return nil
	}
	fmt.Fprintln(a.stdout, "\nRunning; Ctrl-C stops the lab.")
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "appnet: stopping the lab (Ctrl-C again to force)")
	return stop()
}
