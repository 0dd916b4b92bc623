package sandboxtest

import "runtime"

func hostArch() string { return runtime.GOARCH }
