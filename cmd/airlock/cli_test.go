package main

import (
	"bytes"
	"testing"
)

// cli runs the airlock command in-process with args and returns its exit
// code, standard output and standard error (the error, if any, last).
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		errb.WriteString("airlock: " + err.Error() + "\n")
		return exitCode(err), out.String(), errb.String()
	}
	return 0, out.String(), errb.String()
}
