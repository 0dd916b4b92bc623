package host

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// Run runs a benchmark, cancelling its context on SIGINT or SIGTERM (so
// that it stops the servers it started), and exits 3 saying what went
// wrong if it failed.
func Run(run func(context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(3)
	}
}

// Logf writes one progress line, stamped with the time of day, to stderr
// (stdout is left for the results).
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// ScratchDir makes a run's work directory (binaries, data, logs) under the
// system's temporary directory. remove deletes it again; with keep set it
// is left for a look afterwards, and the run says where it is.
func ScratchDir(prefix string, keep bool) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		Logf("keeping %s", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// StartLogged starts the server process cmd (name says which one in the
// error) with its output going to the file logPath. The channel it returns
// is closed once the process has exited and its log is closed.
func StartLogged(name string, cmd *exec.Cmd, logPath string) (<-chan struct{}, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(done)
	}()
	return done, nil
}
