package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/storage"
	"github.com/gmailtls/gmailtls/terminal"
)

const consoleUsage = `usage: gmailtls console [--config FILE]

Type the bot's commands in a terminal: the same grammar, the same handlers
and the same database as the Slack bot, shown as plain text, with no Slack
workspace. You are the admin. On a terminal, lines can be edited and
recalled (arrows, Ctrl-A, Ctrl-E, Ctrl-U); piped input is read as it comes,
without a prompt. Buttons are numbered: type the number to press one.
quit, exit or end of input leaves; Ctrl-C interrupts a running command
(exit status 130).

  echo "status" | gmailtls console --config config.toml

`

// consolePrompt is shown before each command typed at a terminal.
const consolePrompt = "gmailtls> "

func runConsole(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	cf := addConfigFlag(fs)
	if code, ok := svcParse(e, fs, consoleUsage, args); !ok {
		return code
	}
	o := svcOptions{mode: storage.ModeExisting, agents: true}
	if path, found := cf.resolve(e); found {
		demo, err := config.PrepareDemo(path, e.getenv)
		if err != nil {
			fmt.Fprintf(e.stderr, "gmailtls console: %v\n", err)
			return exitFailed
		}
		if demo {
			o.mode = storage.ModeCreate
		}
	}
	s, code := svcOpen(ctx, e, cf, o)
	if s == nil {
		return code
	}
	defer s.store.Close()
	fmt.Fprintf(e.stderr, "gmailtls console: relays: %d, database %s. Type help, or quit to leave.\n", len(s.mon.Snapshot().Names()), s.store.Path())
	doer := commands.ProgressDoer{Next: s.h, Out: e.stdout, Snap: s.mon.Snapshot}
	con := terminal.Console{Doer: doer, User: "console", Out: e.stdout} // in the audit log and on runs
	err := con.Run(ctx, terminal.NewLines(e.stdin, e.stdout, consolePrompt))
	switch {
	case errors.Is(err, terminal.ErrInterrupted):
		fmt.Fprintln(e.stderr, "interrupted")
		return exitInterrupted
	case err != nil:
		fmt.Fprintf(e.stderr, "gmailtls console: %v\n", err)
		return exitFailed
	}
	return exitOK
}
