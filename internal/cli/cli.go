// Package cli is appnet's command tree: one file per command group, each
// with its help text and a working example beside the code.
//
// Main runs a command line and returns the process exit code: 0 when it
// succeeded, 1 when it failed, 2 when the command line itself was wrong
// (with a one-line reason).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"appnet/trace"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// app is what every command shares: the global flags and what they set up.
type app struct {
	stdout, stderr io.Writer

	traceOn  bool
	logLevel string

	logger     *slog.Logger
	tracer     *trace.Tracer // nil unless --trace
	transcript *trace.Transcript
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Main runs appnet with args (without the program name) and returns the
// exit code. SIGINT and SIGTERM cancel the context handed to the command;
// a second one kills the process as usual.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // after the first signal, the default action again

	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	a.stopTrace()
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "appnet: %v (see 'appnet help')\n", ue.err)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "appnet: %v\n", err)
	return ExitFail
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "appnet",
		Short:         "the Internet's application layer, built for real",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noSubcommand,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd)
		},
		// The completion command adds little to a teaching tool and much to
		// `appnet help`.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	pf := root.PersistentFlags()
	pf.BoolVar(&a.traceOn, "trace", false, "print every protocol message as a C:/S: transcript on stderr")
	pf.StringVar(&a.logLevel, "log-level", "info", "log detail: debug, info, warn or error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND...]",
		Short: "list every command, or show one command's flags and example",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("no command %q", strings.Join(args, " "))
			}
			return target.Help()
		},
	})
	root.SetHelpFunc(a.help)

	for _, c := range commands {
		if cmd := c(a); cmd != nil { // nil: a group with nothing in it yet
			root.AddCommand(cmd)
		}
	}
	return root
}

// commands are the top-level commands; each command group's file adds its
// own in an init function, so a new subsystem touches no other file.
var commands []func(*app) *cobra.Command

func addCommand(c func(*app) *cobra.Command) { commands = append(commands, c) }

// traceFull is the annotation of commands whose transcript shows the time
// and host of every message.
const traceFull = "trace-full"

// setup applies the global flags.
func (a *app) setup(cmd *cobra.Command) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	a.logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(a.logger)
	if a.traceOn && a.tracer == nil {
		a.tracer = trace.New()
		var f trace.Format
		if cmd.Annotations[traceFull] != "" {
			f = trace.Format{Time: true, Host: true}
		}
		a.transcript = trace.NewTranscript(a.tracer, a.stderr, f)
	}
	return nil
}

func (a *app) stopTrace() {
	if a.transcript != nil {
		a.transcript.Stop()
		a.tracer.Close()
	}
}

// noSubcommand is the Args check of the root and of command groups: any
// argument is a subcommand that does not exist.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%q is not a command of %q", args[0], cmd.CommandPath())
	}
	return nil
}

// group returns a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noSubcommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	g.AddCommand(subs...)
	return g
}

// args wraps a cobra argument check so its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// help prints the command list for the root (every command, one line
// each) and cobra's usual help, with flags and example, for the others.
func (a *app) help(cmd *cobra.Command, _ []string) {
	w := cmd.OutOrStdout()
	if cmd.HasParent() {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(cmd.Short))
		if cmd.Long != "" {
			fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(cmd.Long))
		}
		if cmd.Runnable() && !cmd.HasSubCommands() {
			fmt.Fprintf(w, "Usage:\n  %s\n\n", cmd.UseLine())
		}
		if cmd.HasSubCommands() {
			fmt.Fprintln(w, "Commands:")
			writeCommands(w, cmd)
			fmt.Fprintln(w)
		}
		if cmd.Example != "" {
			fmt.Fprintf(w, "Example:\n%s\n\n", cmd.Example)
		}
		if cmd.HasAvailableLocalFlags() {
			fmt.Fprintf(w, "Flags:\n%s\n", cmd.LocalFlags().FlagUsages())
		}
		fmt.Fprintf(w, "Global flags:\n%s", cmd.InheritedFlags().FlagUsages())
		return
	}
	fmt.Fprintf(w, "appnet: %s.\n\nUsage:\n  appnet [--trace] [--log-level L] COMMAND [flags] [args]\n\nCommands:\n", cmd.Short)
	writeCommands(w, cmd)
	fmt.Fprintf(w, "\nGlobal flags:\n%s\nRun 'appnet COMMAND -h' for a command's flags and an example.\n", cmd.PersistentFlags().FlagUsages())
}

// writeCommands lists every runnable command under cmd, one line each.
func writeCommands(w io.Writer, cmd *cobra.Command) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	var walk func(*cobra.Command)
	var lines []string
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden {
				continue
			}
			if !sub.HasSubCommands() {
				path := strings.TrimPrefix(sub.CommandPath(), cmd.Root().Name()+" ")
				lines = append(lines, fmt.Sprintf("  %s\t%s\n", path, sub.Short))
			}
			walk(sub)
		}
	}
	walk(cmd)
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprint(tw, l)
	}
	tw.Flush()
}
