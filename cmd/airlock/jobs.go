package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/store"
)

func newJobs() *cobra.Command {
	cmd := &cobra.Command{Use: "jobs", Short: "Show vetting jobs (import → scan → profile → harden → decide)"}
	var srv, state, digest, output string
	list := &cobra.Command{
		Use: "list [--state S] [--digest D]", Short: "List vetting jobs, newest first",
		Example: "  airlock jobs list --state failed", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			js, err := client(srv).Jobs(cmd.Context(), store.JobFilter{State: state, Digest: digest})
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), js)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSTATE\tDIGEST\tREPOSITORY\tSTAGES\tUPDATED")
			for _, j := range js {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.State, orDash(j.Digest), orDash(j.Repository), stagesLine(j), j.UpdatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	serverFlag(list, &srv)
	outputFlag(list, &output)
	list.Flags().StringVar(&state, "state", "", "only jobs in this state: queued, running, done, failed")
	list.Flags().StringVar(&digest, "digest", "", "only jobs of this digest")
	show := &cobra.Command{
		Use: "show ID", Short: "Show one vetting job, stage by stage",
		Example: "  airlock jobs show 12 -o json", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return usageErr("job id must be an integer")
			}
			j, err := client(srv).Job(cmd.Context(), id)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), j)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Job:     %d\nState:   %s\nDigest:  %s\n", j.ID, j.State, orDash(j.Digest))
			if j.Error != "" {
				fmt.Fprintf(w, "Error:   %s\n", j.Error)
			}
			for _, s := range j.Stages {
				line := fmt.Sprintf("  %-8s %-8s attempts %d", s.Name, s.Status, s.Attempts)
				if s.Error != "" {
					line += "  " + s.Error
				}
				fmt.Fprintln(w, line)
			}
			return nil
		},
	}
	serverFlag(show, &srv)
	outputFlag(show, &output)
	cmd.AddCommand(list, show)
	return cmd
}

func stagesLine(j store.Job) string {
	var parts []string
	for _, s := range j.Stages {
		parts = append(parts, s.Name+":"+s.Status)
	}
	return strings.Join(parts, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
