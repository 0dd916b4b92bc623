// Command airlock imports, vets and serves container images whose trust is explicit.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/server"
)

// Exit codes: 0 passed, 1 policy said no, 2 usage or input error, 3 internal failure.
const (
	exitDenied   = 1
	exitUsage    = 2
	exitInternal = 3
)

// exitError carries an exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "airlock:", err)
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var se *server.StatusError
	if errors.As(err, &se) {
		switch {
		case se.Status == 401 || se.Status == 403:
			return exitDenied
		case se.Status >= 500:
			return exitInternal
		default:
			return exitUsage
		}
	}
	return exitInternal
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "airlock",
		Short: "Import, vet and serve container images whose trust is explicit",
		Long: `Airlock keeps images in quarantine until they are vetted, serves only approved
digests from its private registry, and records why each digest was trusted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErr("%v", err) })
	root.AddCommand(newVersion(), newServe(), newLogin(), newToken(),
		newDecision("approve", "approved"), newDecision("reject", "rejected"), newDecision("revoke", "revoked"),
		newList(), newShowRecord(), newAudit(), newImport(), newJobs(), newKeys(), newVerify(), newQueue(), newPolicy(), newPin(), newDB(), newScan(), newProfile(), newHarden())
	root.AddCommand(newWaive(), newRevocation())
	root.AddCommand(newAdmission())
	return root
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  airlock version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "airlock", server.Version)
			return nil
		},
	}
}
