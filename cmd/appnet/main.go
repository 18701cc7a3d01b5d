// Command appnet is the Internet's application layer in one binary; run
// `appnet help` for its commands.
package main

import (
	"context"
	"os"

	"appnet/internal/cli"
)

func main() { os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }
