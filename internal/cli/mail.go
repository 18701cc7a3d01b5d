package cli

import "github.com/spf13/cobra"

func init() { addCommand((*app).mailCommand) }

// mailCommands are the mail group's subcommands. Each part of the mail
// system adds its own from its file (the server and queue, the mailbox
// users, the user agent), as addCommand does for the top level.
var mailCommands []func(*app) *cobra.Command

func addMailCommand(c func(*app) *cobra.Command) { mailCommands = append(mailCommands, c) }

func (a *app) mailCommand() *cobra.Command {
	var subs []*cobra.Command
	for _, c := range mailCommands {
		subs = append(subs, c(a))
	}
	if len(subs) == 0 {
		return nil // until a part of the mail system has landed
	}
	return group("mail", "e-mail: an SMTP server with a durable queue, mailboxes, and a MIME user agent", subs...)
}
