// Command import compares `airlock import` with crane and skopeo copying the
// same image between registries, side by side in one run on 127.0.0.1: an
// upstream distribution registry holds a generated multi-layer image of
// random bytes, and every repetition copies it into a fresh destination of
// each tool (airlock serve, or distribution's registry for the peers).
//
//	go run ./bench/import -mib 500 -layers 10 -reps 3
package main

import (
	"context"
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
	mib      int
	layers   int
	reps     int
	warmup   int
	out      string
	airlock  string
	registry string
	crane    string
	skopeo   string
	perf     bool
	keep     bool
}

func main() {
	var o options
	flag.IntVar(&o.mib, "mib", 500, "size of the image's layers together, in MiB")
	flag.IntVar(&o.layers, "layers", 10, "number of layers, each of random incompressible bytes")
	flag.IntVar(&o.reps, "reps", 3, "timed copies per tool; the table shows median, min and max")
	flag.IntVar(&o.warmup, "warmup", 1, "untimed copies per tool before the timed ones (page cache, binaries)")
	flag.StringVar(&o.out, "out", "", "directory for results.json, results.md and the cached image layout (default bench/import/out in the repository)")
	flag.StringVar(&o.airlock, "airlock", "", "airlock binary to measure (default: built from this repository's work tree)")
	flag.StringVar(&o.registry, "registry", "", "distribution registry binary (default: registry on PATH or in AIRLOCK_TEST_TOOLS, else installed by .ci/tools.sh)")
	flag.StringVar(&o.crane, "crane", "", "crane binary (default: crane on PATH or in AIRLOCK_TEST_TOOLS, else installed by .ci/tools.sh)")
	flag.StringVar(&o.skopeo, "skopeo", "", "skopeo binary (default: skopeo on PATH at the pinned version, else installed by bench/import/skopeo.sh; \"none\" leaves skopeo out)")
	flag.BoolVar(&o.perf, "perf", false, "after measuring, record a `perf` CPU profile of airlock serve and of crane's destination during one more copy each, into the out directory")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with the binaries, data and server logs")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/import [flags]\n\n"+
			"Copies one generated image from a loopback upstream registry with airlock import,\n"+
			"crane copy and skopeo copy, each into a fresh destination, and compares the times.\n"+
			"Example: go run ./bench/import -mib 500 -layers 10 -reps 3\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if o.mib < 1 || o.layers < 1 || o.layers > o.mib*64 || o.reps < 1 || o.warmup < 0 || flag.NArg() > 0 {
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
		o.out = filepath.Join(root, "bench", "import", "out")
	}
	tmp, removeTmp, err := host.ScratchDir("airlock-bench-import-", o.keep)
	if err != nil {
		return err
	}
	defer removeTmp()

	tools, err := findTools(ctx, root, o)
	if err != nil {
		return err
	}
	airlockBin := o.airlock
	if airlockBin == "" {
		airlockBin = filepath.Join(tmp, "airlock")
		host.Logf("building airlock into %s", airlockBin)
		if err := buildAirlock(ctx, root, airlockBin, host.GitDescribe(ctx, root)); err != nil {
			return err
		}
	}
	airlockVersion, err := commandOutput(ctx, airlockBin, "version")
	if err != nil {
		return fmt.Errorf("%s version: %w", airlockBin, err)
	}
	host.Logf("airlock: %s (%s)", airlockBin, airlockVersion)

	img, err := cachedImage(o.out, o.mib, o.layers)
	if err != nil {
		return err
	}
	up, err := startDistribution(ctx, tools.registry, filepath.Join(tmp, "upstream"), "upstream")
	if err != nil {
		return err
	}
	defer up.stop()
	if err := img.push(ctx, up); err != nil {
		return err
	}

	res := &results{
		Started: started.UTC(),
		Command: commandLine(),
		Machine: machine,
		Options: map[string]any{"mib": o.mib, "layers": o.layers, "reps": o.reps, "warmup": o.warmup},
		Image:   img.summary(),
		Versions: map[string]string{
			"airlock":      strings.TrimPrefix(airlockVersion, "airlock "),
			"distribution": tools.registryVersion,
			"crane":        tools.craneVersion,
			"skopeo":       tools.skopeoVersion,
		},
		Goal: maxRatio,
	}
	b := &bench{o: o, tmp: tmp, tools: tools, airlock: airlockBin, up: up, img: img, res: res}
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

// commandLine is how this run was started, for the report.
func commandLine() string {
	args := append([]string{"go run ./bench/import"}, os.Args[1:]...)
	return strings.Join(args, " ")
}
