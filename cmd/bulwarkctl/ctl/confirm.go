package ctl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// confirmByName shows warning on stderr and asks the operator to type host,
// the name of the host the action is about. It returns nil only if exactly
// that name was typed; every other outcome (another answer, no answer,
// standard input not a terminal, Ctrl-C) is an error that says nothing was
// sent. action names what is being confirmed, e.g. "fence node-a".
func (s *session) confirmByName(action, host, warning string) error {
	if !isTerminal(s.in) {
		return fmt.Errorf("standard input is not a terminal, so bulwarkctl cannot ask you to confirm: add --yes to %s without a question (nothing was sent to the server)", action)
	}
	fmt.Fprintln(s.errw, warning)
	fmt.Fprint(s.errw, "Type the host name to confirm: ")
	answer, err := s.readLine()
	if err != nil {
		fmt.Fprintln(s.errw)
		return fmt.Errorf("%s cancelled: %v (nothing was sent to the server)", action, err)
	}
	typed := strings.TrimSpace(answer)
	switch {
	case typed == host:
		return nil
	case typed == "":
		return fmt.Errorf("%s cancelled: no host name was typed (nothing was sent to the server)", action)
	case isNo(typed):
		return fmt.Errorf("%s cancelled (nothing was sent to the server)", action)
	case isYes(typed):
		return fmt.Errorf("%s cancelled: type the host name %q itself, not %q (nothing was sent to the server)", action, host, typed)
	}
	return fmt.Errorf("%s cancelled: you typed %q, not the host name %q (nothing was sent to the server)", action, typed, host)
}

// readLine reads one line of the answer. It gives up when the command's
// context ends (Ctrl-C): a read from a terminal cannot be interrupted, so
// the read goes on in a goroutine that is abandoned then.
func (s *session) readLine() (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(s.in).ReadString('\n')
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && !(errors.Is(r.err, io.EOF) && r.line != "") {
			if errors.Is(r.err, io.EOF) {
				return "", errors.New("no answer on standard input (use --yes to skip the question)")
			}
			return "", fmt.Errorf("reading the answer: %w", r.err)
		}
		return r.line, nil
	case <-s.ctx.Done():
		return "", errors.New("interrupted")
	}
}

// isTerminal reports whether in, the standard input, may be a person at a
// terminal. Only an *os.File is checked: a pipe or a regular file is not a
// terminal, so a script must say --yes instead of piping an answer in.
// Other readers (tests) count as a terminal.
func isTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	if !ok {
		return true
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func isYes(s string) bool {
	switch strings.ToLower(s) {
	case "y", "yes":
		return true
	}
	return false
}

func isNo(s string) bool {
	switch strings.ToLower(s) {
	case "n", "no":
		return true
	}
	return false
}
