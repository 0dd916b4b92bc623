package main

import "github.com/airlock-dev/airlock/bench/internal/host"

// Shared with the other benchmarks (bench/internal/host).
type machine = host.Machine

var (
	cleanEnv        = host.CleanEnv
	cpuTime         = host.CPUTime
	describeMachine = host.DescribeMachine
	freeAddr        = host.FreeAddr
	gitDescribe     = host.GitDescribe
	loadAvg         = host.LoadAvg
	logf            = host.Logf
	runBenchmark    = host.Run
	scratchDir      = host.ScratchDir
	startLogged     = host.StartLogged
)
