package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/server"
)

func newWaive() *cobra.Command {
	var srv, output string
	var req server.WaiverRequest
	cmd := &cobra.Command{
		Use:   "waive (--digest D | --repository R) --finding ID --owner O --reason TEXT --expires 30d",
		Short: "Waive one finding for a digest or a repository, with an owner, a reason and an expiry",
		Long: `A waiver accepts one finding — an advisory id or any of its aliases (CVE-…, GHSA-…), or the
id of another detector's finding — for one digest or every digest of a repository, optionally
only in one package. The policy then sees the finding as waived: rules skip waived findings
unless they set includeWaived, so an approver can approve what the policy denied because of
it. A waiver always expires; when it does the finding counts again, an approved digest is
judged again and, if the policy calls for it, its revocation is scheduled after the grace
period. Creating, revoking and expiring waivers is audited. Needs the approver role.`,
		Example: `  airlock waive --digest sha256:4f0c… --finding CVE-2023-32681 --package requests \
      --owner team-payments --reason 'no proxy configured in this service' --expires 30d
  airlock waive --repository team/api --finding GHSA-j8r2-6x86-q33q --owner sec --reason 'tracked in SEC-12' --expires 14d
  airlock waive list --digest sha256:4f0c…
  airlock waive revoke 7 --reason 'fixed in the new base image'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return usageErr("-o must be json, not %q", output)
			}
			if err := server.CheckWaiverRequest(req); err != nil {
				return usageErr("%v", err)
			}
			w, err := client(srv).Waive(cmd.Context(), req)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "waiver %d: %s waived for %s%s until %s (owner %s)\n", w.ID, w.Finding, w.Digest+w.Repository,
				orDash2(" in ", w.Package), w.Expires.UTC().Format(time.RFC3339), w.Owner)
			return nil
		},
	}
	serverFlag(cmd, &srv)
	outputFlag(cmd, &output)
	cmd.Flags().StringVar(&req.Digest, "digest", "", "the digest whose finding is waived")
	cmd.Flags().StringVar(&req.Repository, "repository", "", "waive the finding for every digest of this repository")
	cmd.Flags().StringVar(&req.Finding, "finding", "", "advisory id or alias (CVE-…, GHSA-…), or a finding id")
	cmd.Flags().StringVar(&req.Package, "package", "", "only in this package")
	cmd.Flags().StringVar(&req.Owner, "owner", "", "who answers for the waiver (a person or team)")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why the finding is acceptable (recorded in the audit log)")
	cmd.Flags().StringVar(&req.Expires, "expires", "", "lifetime, e.g. 30d or 720h (required)")
	cmd.AddCommand(newWaiveList(), newWaiveRevoke())
	return cmd
}

func newWaiveList() *cobra.Command {
	var srv, output, digest, repo string
	var active bool
	cmd := &cobra.Command{
		Use:     "list [--digest D] [--repository R] [--active]",
		Short:   "List waivers, newest first",
		Example: "  airlock waive list --active\n  airlock waive list --digest sha256:4f0c… -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return usageErr("-o must be json, not %q", output)
			}
			ws, err := client(srv).Waivers(cmd.Context(), digest, repo, active)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), ws)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tFINDING\tPACKAGE\tFOR\tOWNER\tEXPIRES\tSTATE\tREASON")
			for _, w := range ws {
				state := "active"
				switch {
				case w.RevokedAt != nil:
					state = "revoked by " + w.RevokedBy
				case !w.Expires.After(time.Now()):
					state = "expired"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, w.Finding, orDash(w.Package), w.Digest+w.Repository, w.Owner,
					w.Expires.UTC().Format(time.RFC3339), state, w.Reason)
			}
			return tw.Flush()
		},
	}
	serverFlag(cmd, &srv)
	outputFlag(cmd, &output)
	cmd.Flags().StringVar(&digest, "digest", "", "waivers of this digest")
	cmd.Flags().StringVar(&repo, "repository", "", "waivers of this repository")
	cmd.Flags().BoolVar(&active, "active", false, "only waivers in force now")
	return cmd
}

func newWaiveRevoke() *cobra.Command {
	var srv, reason string
	cmd := &cobra.Command{
		Use:     "revoke ID --reason TEXT",
		Short:   "End a waiver now: the finding counts again",
		Example: "  airlock waive revoke 7 --reason 'fixed in the new base image'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return usageErr("%q is not a waiver id", args[0])
			}
			if reason == "" {
				return usageErr("--reason is required: say why")
			}
			w, err := client(srv).RevokeWaiver(cmd.Context(), id, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "waiver %d of %s revoked\n", w.ID, w.Finding)
			return nil
		},
	}
	serverFlag(cmd, &srv)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required, recorded in the audit log)")
	return cmd
}

func newRevocation() *cobra.Command {
	cmd := &cobra.Command{Use: "revocation", Short: "List and cancel revocations scheduled after re-evaluation"}
	var srv, output, digest, status, reason string
	list := &cobra.Command{
		Use:     "list [--digest D] [--status scheduled|executed|cancelled]",
		Short:   "List scheduled revocations, oldest first",
		Example: "  airlock revocation list --status scheduled",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := client(srv).Revocations(cmd.Context(), digest, status)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), rs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDIGEST\tDUE\tSTATUS\tREASON")
			for _, r := range rs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.ID, r.Digest, r.Due.UTC().Format(time.RFC3339), r.Status, r.Reason)
			}
			return tw.Flush()
		},
	}
	serverFlag(list, &srv)
	outputFlag(list, &output)
	list.Flags().StringVar(&digest, "digest", "", "only this digest")
	list.Flags().StringVar(&status, "status", "", "only this status")
	cancel := &cobra.Command{
		Use:   "cancel ID --reason TEXT",
		Short: "Keep an approved digest whose revocation is scheduled (only when the policy does not deny it)",
		Example: `  airlock revocation cancel 3 --reason 'reviewed: the finding does not apply'
  # when the policy denies, waive the finding instead (airlock waive)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return usageErr("%q is not a revocation id", args[0])
			}
			if reason == "" {
				return usageErr("--reason is required: say why")
			}
			r, err := client(srv).CancelRevocation(cmd.Context(), id, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revocation %d of %s cancelled\n", r.ID, r.Digest)
			return nil
		},
	}
	serverFlag(cancel, &srv)
	cancel.Flags().StringVar(&reason, "reason", "", "why (required, recorded in the audit log)")
	cmd.AddCommand(list, cancel)
	return cmd
}
