package ctl

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

func workloadLogsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Aliases:   []string{"log"},
		Usage:     "print a workload's output (container stdout/stderr, VM serial console)",
		ArgsUsage: "NAME",
		Description: `Prints what the workload NAME has written so far: a container's standard
output and standard error, a VM's serial console. The server fetches it
from the agent of the host the workload is placed on, so a workload that
is not placed on any host (pending, or being moved) has no output to show.

With --follow (-f), bulwarkctl then keeps printing what the workload
writes, as it comes, like "tail -f", until you press Ctrl-C (or the
workload's host stops serving it). The output is passed through as it is,
with no prefix or time stamps; -o does not change it.

Examples:
   bulwarkctl workload logs web-1
   bulwarkctl workload logs web-1 --follow
   bulwarkctl workload logs job-1 > job-1.log`,
		Flags: withGlobal(
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new output until Ctrl-C"},
		),
		Action: leaf(workloadLogs),
	}
}

func workloadLogs(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	if err := api.ValidateName("workload", name); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	rc, err := s.api.Logs(s.ctx, name, c.Bool("follow"))
	if err != nil {
		if s.ctx.Err() != nil {
			return nil // Ctrl-C before the output started
		}
		return explainLogs(err, name)
	}
	defer rc.Close()
	err = copyChunks(s.out, rc)
	if err != nil && s.ctx.Err() != nil {
		return nil // Ctrl-C: the normal end of --follow
	}
	if err != nil {
		return fmt.Errorf("the output of workload %q broke off: %w", name, err)
	}
	return nil
}

// copyChunks copies r to w as it arrives: every chunk read is written (and
// flushed, if w buffers) at once, instead of waiting to fill a buffer.
func copyChunks(w io.Writer, r io.Reader) error {
	fl, _ := w.(interface{ Flush() error })
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if fl != nil {
				if ferr := fl.Flush(); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// explainLogs turns an error of the logs request into a message for the
// user. The server's 404 here means that the workload runs nowhere (or
// does not exist), not that the endpoint is missing; its message says
// which.
func explainLogs(err error, name string) error {
	var ae *client.APIError
	if !errors.As(err, &ae) || client.IsNoSuchEndpoint(err) {
		return explain(err, "workload", name)
	}
	switch ae.Status {
	case http.StatusNotFound:
		// "workload "x" is not placed on any host, so it has no output"
		msg := ae.Message
		if msg == "" {
			msg = fmt.Sprintf("workload %q has no output", name)
		}
		return fmt.Errorf("%s; \"bulwarkctl workload show %s\" shows its state and host", msg, name)
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// The agent of the workload's host did not answer, or the server
		// could not tell where it is.
		return fmt.Errorf("cannot get the output of workload %q now: %w; try again shortly, and if it persists check its host with \"bulwarkctl node list\"", name, err)
	case http.StatusNotImplemented:
		return fmt.Errorf("cannot get the output of workload %q: its host keeps none: %w", name, err)
	}
	return explain(err, "workload", name)
}
