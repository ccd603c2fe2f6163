package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/message"
)

const consoleUsage = `usage: gmailtls console [--config FILE]

Type the bot's commands in a terminal: the same grammar, the same handlers
and the same database as the Slack bot, rendered as text, with no Slack
workspace. You are the admin. Buttons are numbered: type the number to
press one. quit, exit or end of input leaves.

  echo "status" | gmailtls console --config config.toml

`

// consolePrompt is printed before each command.
const consolePrompt = "gmailtls> "

// consoleUser is who console commands run as (audit log, probe runs).
const consoleUser = "console"

func runConsole(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	path, explicit := svcFlags(fs)
	if code, ok := svcParse(e, fs, consoleUsage, args); !ok {
		return code
	}
	s, code := svcOpen(ctx, e, *path, explicit())
	if s == nil {
		return code
	}
	defer s.Close()
	relays := fmt.Sprintf("%d relays", len(s.cfg.Relays))
	if len(s.cfg.Relays) == 1 {
		relays = "1 relay"
	}
	fmt.Fprintf(e.stderr, "gmailtls console: %s, database %s. Type help, or quit to leave.\n", relays, s.store.Path())

	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(e.stdin)
		sc.Buffer(make([]byte, 0, 4096), 64<<10)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()

	var buttons []message.Button
	for {
		fmt.Fprint(e.stdout, consolePrompt)
		var line string
		select {
		case <-ctx.Done():
			fmt.Fprintln(e.stdout)
			return exitOK
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintln(e.stdout)
				if err := <-readErr; err != nil {
					fmt.Fprintf(e.stderr, "gmailtls console: reading input: %v\n", err)
					return exitFailed
				}
				return exitOK
			}
			line = strings.TrimSpace(l)
		}
		switch strings.ToLower(line) {
		case "":
			continue
		case "quit", "exit", `\q`:
			return exitOK
		}
		req := message.Request{Text: line, UserID: consoleUser, UserName: consoleUser, Source: message.SourceConsole}
		if n, err := strconv.Atoi(line); err == nil {
			if n < 1 || n > len(buttons) {
				fmt.Fprintf(e.stdout, "there is no button %d; the last buttons shown were 1 to %d\n", n, len(buttons))
				continue
			}
			b := buttons[n-1]
			req = message.Request{Action: b.Action, Value: b.Value, UserID: consoleUser, UserName: consoleUser, Source: message.SourceConsole}
		}
		resp := s.h.Do(ctx, req)
		if err := commands.RenderText(e.stdout, resp); err != nil {
			fmt.Fprintf(e.stderr, "gmailtls console: %v\n", err)
			return exitFailed
		}
		fmt.Fprintln(e.stdout)
		// Like a chat message's, the buttons of the last answer that had
		// any stay pressable (a transcript answer has none).
		if b := commands.FlattenButtons(resp); len(b) > 0 {
			buttons = b
		}
	}
}
