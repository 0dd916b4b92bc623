// Command registry compares airlock's registry with distribution's own
// registry binary, side by side in one run on 127.0.0.1: blob pull and push
// throughput and manifest latency, with airlock's gate on (an approved image
// in a gated repository) and off (the same image in an --allow-unvetted one).
//
//	go run ./bench/registry -blob-mib 256
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

// options are the command-line settings of one run.
type options struct {
	blobMiB  int
	requests int
	reps     int
	out      string
	registry string
	perf     bool
	keep     bool
}

func main() {
	var o options
	flag.IntVar(&o.blobMiB, "blob-mib", 256, "size of the random blob pulled and pushed, in MiB")
	flag.IntVar(&o.requests, "requests", 2000, "manifest GETs per setting and repetition (manifest PUTs: a tenth of it, at least 20)")
	flag.IntVar(&o.reps, "reps", 7, "repetitions of every measurement; the table shows the median (min–max)")
	flag.StringVar(&o.out, "out", "", "directory for results.json and results.md (default bench/registry/out in the repository)")
	flag.StringVar(&o.registry, "registry", "", "distribution registry binary (default: registry on PATH or in AIRLOCK_TEST_TOOLS, else installed by .ci/tools.sh)")
	flag.BoolVar(&o.perf, "perf", false, "after measuring, record a `perf` CPU profile of each server during 16-client manifest GETs into the out directory")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with the binaries, data and server logs")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/registry [flags]\n\n"+
			"Starts distribution's registry and airlock serve on 127.0.0.1 and compares them.\n"+
			"Example: go run ./bench/registry -blob-mib 256 -reps 5\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if o.blobMiB < 1 || o.requests < 1 || o.reps < 1 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	host.Run(func(ctx context.Context) error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	started := time.Now()
	machine := host.DescribeMachine()
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "registry", "out")
	}
	tmp, removeTmp, err := host.ScratchDir("airlock-bench-", o.keep)
	if err != nil {
		return err
	}
	defer removeTmp()

	regBin, regVersion, err := distributionBinary(ctx, root, o.registry)
	if err != nil {
		return err
	}
	host.Logf("distribution: %s (%s)", regBin, regVersion)
	airlockBin := filepath.Join(tmp, "airlock")
	host.Logf("building airlock into %s", airlockBin)
	if err := buildAirlock(ctx, root, airlockBin); err != nil {
		return err
	}

	dist, err := startDistribution(ctx, regBin, filepath.Join(tmp, "distribution"))
	if err != nil {
		return err
	}
	defer dist.stop()
	al, err := startAirlock(ctx, airlockBin, filepath.Join(tmp, "airlock-data"), openRepo)
	if err != nil {
		return err
	}
	defer al.stop()

	host.Logf("generating a %d MiB random blob", o.blobMiB)
	img, err := newImage(int64(o.blobMiB) << 20)
	if err != nil {
		return err
	}
	targets, err := setup(ctx, dist, al, img)
	if err != nil {
		return err
	}
	if err := warmUp(ctx, targets, img); err != nil {
		return err
	}

	res := &results{
		Started:  started.UTC(),
		Command:  commandLine(),
		Machine:  machine,
		Options:  o.asMap(),
		Versions: map[string]string{"distribution": regVersion, "airlock": host.GitDescribe(ctx, root)},
		Targets:  targetLabels(targets),
	}
	b := &bench{o: o, targets: targets, img: img, res: res}
	if err := b.measure(ctx); err != nil {
		return err
	}
	res.finish()
	res.Machine.LoadEnd = host.LoadAvg()
	res.Seconds = time.Since(started).Seconds()
	table := res.markdown()
	fmt.Println()
	fmt.Println(table)
	if err := res.write(o.out); err != nil {
		return err
	}
	host.Logf("wrote %s and %s", filepath.Join(o.out, "results.json"), filepath.Join(o.out, "results.md"))
	if o.perf {
		if err := b.profile(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (o options) asMap() map[string]any {
	return map[string]any{"blobMiB": o.blobMiB, "requests": o.requests, "reps": o.reps}
}

// commandLine is how this run was started, for the report.
func commandLine() string {
	args := append([]string{"go run ./bench/registry"}, os.Args[1:]...)
	return strings.Join(args, " ")
}

var errGate = errors.New("the gate did not behave as configured")
