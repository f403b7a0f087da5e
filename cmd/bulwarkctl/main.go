// Command bulwarkctl is the operator CLI of Bulwark. The commands live in
// package ctl; run "bulwarkctl --help" for the overview.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwarkhq/bulwark/cmd/bulwarkctl/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := ctl.NewApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(ctl.ExitError)
	}
}
