package server

import (
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/profile/stage"
	"github.com/airlock-dev/airlock/internal/sandbox"
)

func TestProfileSettings(t *testing.T) {
	c := config.Profile{
		Duration:   20 * time.Second,
		Durations:  []string{"web/**=45s", "web/slow=2m", "**=10s"},
		HTTPProbes: []string{"web/**=8080/healthz", "web/api=9090/ready", "db/**=x"},
		ProbeCmds:  []string{"web/api=wget -qO- 'http://127.0.0.1:9090/a b'", "web/api=sh -c 'x"},
	}
	for repo, want := range map[string]stage.Settings{
		"web/api": {Duration: 45 * time.Second,
			HTTPProbes: []sandbox.HTTPProbe{{Port: 8080, Path: "/healthz"}, {Port: 9090, Path: "/ready"}},
			ProbeCmds:  [][]string{{"wget", "-qO-", "http://127.0.0.1:9090/a b"}}},
		"web/slow": {Duration: 45 * time.Second, HTTPProbes: []sandbox.HTTPProbe{{Port: 8080, Path: "/healthz"}}},
		"db/pg":    {Duration: 10 * time.Second},
	} {
		if got := profileSettings(c, repo, slog.New(slog.DiscardHandler)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, want %+v", repo, got, want)
		}
	}
	if got := profileSettings(config.Profile{Duration: 20 * time.Second}, "x", slog.Default()); got.Duration != 20*time.Second || got.HTTPProbes != nil {
		t.Errorf("defaults: %+v", got)
	}
}
