package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/store"
)

func newKeys() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Signing keys for approval attestations (offline)"}
	var typ, out, srv string
	gen := &cobra.Command{
		Use:   "generate --out DIR [--type ecdsa-p256|ed25519]",
		Short: "Generate a signing key pair: DIR/signing.key (0600) and DIR/signing.pub",
		Long: `Generate a key pair on this machine, without contacting anything. Give the private key to
the server with signing.keyFile (--signing-key-file); give the public key to verifiers.`,
		Example: `  airlock keys generate --out ./keys
  airlock serve --signing-key-file ./keys/signing.key
  airlock keys generate --type ed25519 --out ./keys-ed25519`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("--out DIR is required")
			}
			k, err := attest.GenerateKey(typ)
			if err != nil {
				return usageErr("%v", err)
			}
			priv, pub, err := attest.WriteKeyPair(out, k)
			if err != nil {
				return usageErr("%v", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "private key: %s (mode 0600)\npublic key:  %s\nkey id:      %s\n", priv, pub, attest.KeyID(k.Public()))
			return nil
		},
	}
	gen.Flags().StringVar(&typ, "type", attest.KeyECDSAP256, "key type: ecdsa-p256 or ed25519")
	gen.Flags().StringVar(&out, "out", "", "directory to write signing.key and signing.pub to")
	pub := &cobra.Command{
		Use:   "public",
		Short: "Print the server's public key (PEM) that verifies its attestations",
		Example: `  airlock keys public > airlock.pub
  airlock verify 127.0.0.1:5000/team/app@sha256:… --key airlock.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := client(srv).PublicKey(cmd.Context())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	serverFlag(pub, &srv)
	cmd.AddCommand(gen, pub)
	return cmd
}

func newVerify() *cobra.Command {
	var srv, key, token, output string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "verify IMAGE --key PUB.pem",
		Short: "Verify the signed approval of an image: signature, subject, expiry, revocation",
		Long: `Read the approval attestation of IMAGE from the registry (the sha256-<hex>.att tag, as cosign
does, else the referrers API), check its DSSE signature with the public key, that its subject is
the image's digest, that its predicate type is Airlock's approval, that it has not expired, and
ask the server that the digest was not revoked since. Exit 0 verified, 1 not (with the reason),
2 usage, 3 the registry or server could not be asked.`,
		Example: `  airlock keys public > airlock.pub
  airlock verify 127.0.0.1:5000/team/app@sha256:4f0c… --key airlock.pub
  airlock verify registry.example.com/team/app:1.0 --key airlock.pub --server https://airlock.example.com -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usageErr("--key PUB.pem is required (print the server's with `airlock keys public`)")
			}
			pub, err := attest.LoadPublicKey(key)
			if err != nil {
				return usageErr("%v", err)
			}
			var nopts []name.Option
			if insecure {
				nopts = append(nopts, name.Insecure)
			}
			ref, err := name.ParseReference(args[0], nopts...)
			if err != nil {
				return usageErr("image %q: %v", args[0], err)
			}
			c := client(srv)
			if token != "" {
				c.Token = token
			}
			if c.Token == "" {
				return usageErr("a token is needed to ask the server about revocation: --token, AIRLOCK_TOKEN or `airlock login`")
			}
			ropts := []remote.Option{remote.WithAuth(authn.FromConfig(authn.AuthConfig{RegistryToken: c.Token}))}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			res, err := attest.VerifyImage(ctx, ref, attest.VerifyOptions{
				Key: pub, KeyName: key, Remote: ropts,
				State: c.ApprovalState,
			})
			var f *attest.Failure
			if errors.As(err, &f) {
				if output == "json" {
					_ = printJSON(cmd.OutOrStdout(), map[string]any{"verified": false, "digest": res.Digest, "reason": f.Reason})
				}
				return &exitError{code: exitDenied, err: f}
			}
			if err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"verified": true, "result": res})
			}
			a := res.Approval
			var who []string
			for _, ap := range a.Approvers {
				who = append(who, ap.Name)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Verified: %s\n", res.Digest)
			fmt.Fprintf(w, "  approved %s by %s: %s\n", a.ApprovedAt.UTC().Format(time.RFC3339), strings.Join(who, ", "), a.Reason)
			if a.Expires != nil {
				fmt.Fprintf(w, "  expires  %s\n", a.Expires.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(w, "  policy   %s %s: %s\n", a.Policy.Name, a.Policy.Digest, a.Policy.Verdict)
			var notRun []string
			for _, e := range a.Evidence {
				if e.Status != store.StageDone && e.Status != "done" {
					notRun = append(notRun, e.Stage+"="+e.Status)
				}
			}
			if len(notRun) > 0 {
				fmt.Fprintf(w, "  evidence stages not run: %s\n", strings.Join(notRun, " "))
			}
			fmt.Fprintf(w, "  signed by %s, read from %s; the server says %s\n", a.Signer.KeyID, res.Source, res.ServerState)
			return nil
		},
	}
	serverFlag(cmd, &srv)
	cmd.Flags().StringVar(&key, "key", "", "PEM public key that must have signed the attestation")
	cmd.Flags().StringVar(&token, "token", "", "token for the registry and the server (default AIRLOCK_TOKEN or `airlock login`)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "reach the registry over plain HTTP")
	outputFlag(cmd, &output)
	return cmd
}

func newQueue() *cobra.Command {
	var srv, repo, output string
	cmd := &cobra.Command{
		Use:   "queue [--repository R] [-o json]",
		Short: "List quarantined digests waiting for review, and approved ones whose revocation is scheduled",
		Example: `  airlock queue
  airlock queue --repository team/app -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := client(srv).Queue(cmd.Context(), repo)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), q)
			}
			w := cmd.OutOrStdout()
			if len(q) == 0 {
				fmt.Fprintln(w, "nothing waits for review")
				return nil
			}
			for _, e := range q {
				if r := e.Revocation; r != nil {
					fmt.Fprintf(w, "%s  %s  APPROVED, REVOKE AT %s (revocation %d): %s\n", e.Image.Digest, strings.Join(e.Image.Repositories, ","),
						r.Due.UTC().Format(time.RFC3339), r.ID, r.Reason)
				} else {
					fmt.Fprintf(w, "%s  %s  %s  approvals %d/%d\n", e.Image.Digest, strings.Join(e.Image.Repositories, ","), strings.ToUpper(string(e.Verdict.Effect)), len(e.Approvers), e.Required)
				}
				for _, f := range e.Verdict.Fired {
					fmt.Fprintf(w, "    %-6s %s: %s%s\n", f.Effect, f.Rule, f.Message, evidenceText(f.Evidence))
				}
			}
			return nil
		},
	}
	serverFlag(cmd, &srv)
	cmd.Flags().StringVar(&repo, "repository", "", "only this repository")
	outputFlag(cmd, &output)
	return cmd
}

func evidenceText(e any) string {
	if e == nil {
		return ""
	}
	b, err := json.Marshal(e)
	if err != nil || string(b) == "null" || string(b) == "[]" {
		return ""
	}
	return "  " + string(b)
}

func newPolicy() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test, show and start from decision policies (YAML with CEL rules)"}
	var srv, output string
	test := &cobra.Command{
		Use:   "test POLICY DIGEST",
		Short: "Dry-run a policy file over a digest's evidence: which rules fire, with which evidence",
		Long: `Evaluate POLICY (a local file) over the evidence the server holds for DIGEST, without
changing anything. Exit 0 when the verdict is allow, 1 for review or deny, 2 when the policy
does not compile.`,
		Example: `  airlock policy default > policy.yaml && $EDITOR policy.yaml
  airlock policy test policy.yaml sha256:4f0c…`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := policy.Load(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			resp, err := client(srv).Evidence(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			v, err := p.Evaluate(resp.Evidence)
			if err != nil {
				return err
			}
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), map[string]any{"verdict": v, "evidence": resp.Evidence}); err != nil {
					return err
				}
			} else {
				printVerdict(cmd.OutOrStdout(), v, resp.Evidence)
			}
			if v.Effect != policy.Allow {
				return &exitError{code: exitDenied, err: fmt.Errorf("verdict %s: %s", v.Effect, v.Message)}
			}
			return nil
		},
	}
	serverFlag(test, &srv)
	outputFlag(test, &output)
	show := &cobra.Command{
		Use: "show", Short: "Print the server's active policy file and its digest",
		Example: "  airlock policy show", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := client(srv).Policy(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# %s %s\n%s", p.Name, p.Digest, p.Source)
			return nil
		},
	}
	serverFlag(show, &srv)
	def := &cobra.Command{
		Use: "default", Short: "Print the embedded strict default policy, to start your own from",
		Example: "  airlock policy default > policy.yaml", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(policy.DefaultSource())
			return err
		},
	}
	cmd.AddCommand(test, show, def)
	return cmd
}

func printVerdict(w io.Writer, v policy.Verdict, ev policy.Evidence) {
	fmt.Fprintf(w, "Policy:   %s %s\nDigest:   %s\nVerdict:  %s — %s\n", v.Policy, v.PolicyDigest, v.Digest, strings.ToUpper(string(v.Effect)), v.Message)
	if len(v.Fired) == 0 {
		fmt.Fprintln(w, "Rules:    none fired")
	} else {
		fmt.Fprintln(w, "Rules that fired:")
		for _, f := range v.Fired {
			fmt.Fprintf(w, "  %-6s %s: %s%s\n", f.Effect, f.Rule, f.Message, evidenceText(f.Evidence))
		}
	}
	fmt.Fprint(w, "Evidence: stages")
	for _, n := range ev.StageNames() {
		fmt.Fprintf(w, " %s=%s", n, ev.Stages[n].Status)
	}
	fmt.Fprintln(w)
	if ev.Source.Imported {
		fmt.Fprintf(w, "          source %s (tag moved: %v, upstream signatures: %d)\n", ev.Source.Normalized, ev.Source.TagMoved, ev.Source.Signatures)
	} else {
		fmt.Fprintln(w, "          source: pushed, not imported")
	}
	fmt.Fprintf(w, "          findings %d, sbom %v, profile %v, hardening %v (evidence %s)\n", len(ev.Findings), ev.SBOM.Present, ev.Profile.Present, ev.Hardening.Present, v.EvidenceDigest)
}

// approve prints where an approval stands.
func approve(cmd *cobra.Command, c *server.Client, digest string, req server.DecisionRequest) error {
	a, err := c.Approve(cmd.Context(), digest, req)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if a.State != store.Approved {
		st := a.Approval
		fmt.Fprintf(w, "approval recorded: %d of %d distinct approvers (%s); %s stays %s\n", len(st.Approvers), st.Required, strings.Join(st.Approvers, ", "), a.Digest, a.State)
		return nil
	}
	fmt.Fprintf(w, "%s approved\n", a.Digest)
	for _, at := range a.Attestations {
		if at.Digest == a.Digest {
			fmt.Fprintf(w, "  signed attestation %s in %s (tag %s, referrer of the digest)\n", at.Manifest, at.Repository, at.Tag)
		}
	}
	return nil
}

func newShowRecord() *cobra.Command {
	var srv, output string
	cmd := &cobra.Command{
		Use:   "show DIGEST [-o json]",
		Short: "Show the whole story of one digest: source, stages, policy, approvals, attestations, audit",
		Example: `  airlock show sha256:4f0c…
  airlock show sha256:4f0c… -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := client(srv).Record(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), rec)
			}
			printRecord(cmd.OutOrStdout(), rec)
			return nil
		},
	}
	serverFlag(cmd, &srv)
	outputFlag(cmd, &output)
	return cmd
}

func printRecord(w io.Writer, rec server.Record) {
	img := rec.Image
	fmt.Fprintf(w, "Digest:       %s\nState:        %s\n", img.Digest, img.State)
	if img.Expires != nil {
		fmt.Fprintf(w, "Expires:      %s\n", fmtTime(img.Expires))
	}
	fmt.Fprintf(w, "Media type:   %s\n", img.MediaType)
	if img.ArtifactType != "" {
		fmt.Fprintf(w, "Artifact:     %s\n", img.ArtifactType)
	}
	fmt.Fprintf(w, "Size:         %d\nRepositories: %s\n", img.Size, strings.Join(img.Repositories, ", "))
	if img.Subject != "" {
		fmt.Fprintf(w, "Subject:      %s\n", img.Subject)
	}
	for _, ch := range img.Children {
		p := ""
		if ch.Platform != nil {
			p = ch.Platform.OS + "/" + ch.Platform.Architecture
			if ch.Platform.Variant != "" {
				p += "/" + ch.Platform.Variant
			}
		}
		fmt.Fprintf(w, "Child:        %s %s\n", ch.Digest, p)
	}
	// 1. Source.
	if len(img.Source) > 0 {
		printSource(w, img.Source)
	} else {
		fmt.Fprintln(w, "Source:       pushed to the registry, not imported")
	}
	// 2. Stages, newest job first.
	if len(rec.Jobs) == 0 {
		fmt.Fprintln(w, "Stages:       no vetting job")
	}
	for _, j := range rec.Jobs {
		fmt.Fprintf(w, "Stages:       job %d (%s)\n", j.ID, j.State)
		for _, s := range j.Stages {
			line := fmt.Sprintf("  %-8s %-8s attempts %d", s.Name, s.Status, s.Attempts)
			if s.Error != "" {
				line += "  " + s.Error
			}
			fmt.Fprintln(w, line)
		}
	}
	// 3. Policy, evaluated now.
	if v := rec.Verdict; v != nil {
		fmt.Fprintf(w, "Policy:       %s %s → %s: %s\n", v.Policy, v.PolicyDigest, strings.ToUpper(string(v.Effect)), v.Message)
		for _, f := range v.Fired {
			fmt.Fprintf(w, "  %-6s %s: %s%s\n", f.Effect, f.Rule, f.Message, evidenceText(f.Evidence))
		}
	}
	// 3b. Re-evaluation against newer advisories, waivers, scheduled revocations.
	if re := rec.Reevaluation; re != nil {
		fmt.Fprintf(w, "Re-evaluated: %s against advisory snapshot %s (%d new finding(s))\n", re.At.UTC().Format(time.RFC3339), re.Snapshot, len(re.New))
		for _, k := range re.New {
			fmt.Fprintf(w, "  NEW %s\n", strings.ReplaceAll(strings.TrimSuffix(k, "|"), "|", " in "))
		}
	}
	for _, wv := range rec.Waivers {
		state := "active until " + wv.Expires.UTC().Format(time.RFC3339)
		switch {
		case wv.RevokedAt != nil:
			state = fmt.Sprintf("revoked %s by %s: %s", fmtTime(wv.RevokedAt), wv.RevokedBy, wv.RevokeReason)
		case !wv.Expires.After(time.Now()):
			state = "expired " + wv.Expires.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "Waiver:       %d %s%s owned by %s (%s): %s\n", wv.ID, wv.Finding, orDash2(" in ", wv.Package), wv.Owner, state, wv.Reason)
	}
	for _, r := range rec.Revocations {
		switch r.Status {
		case store.RevocationScheduled:
			fmt.Fprintf(w, "Revocation:   scheduled for %s (id %d) by %s: %s\n", r.Due.UTC().Format(time.RFC3339), r.ID, r.Actor, r.Reason)
		default:
			fmt.Fprintf(w, "Revocation:   %s %s by %s (id %d, was due %s): %s\n", r.Status, fmtTime(r.ClosedAt), r.ClosedBy, r.ID, r.Due.UTC().Format(time.RFC3339), r.CloseReason)
		}
	}
	// 4. Approvals.
	fmt.Fprintf(w, "Approvals:    %d required\n", rec.Required)
	for _, a := range rec.Approvals {
		exp := ""
		if a.Expires != nil {
			exp = ", until " + fmtTime(a.Expires)
		}
		fmt.Fprintf(w, "  %s  %s (%s%s): %s\n", a.At.UTC().Format(time.RFC3339), a.Actor, a.Outcome, exp, a.Reason)
	}
	// 5. Attestations.
	if len(rec.Attestations) == 0 {
		fmt.Fprintln(w, "Attestations: none")
	} else {
		fmt.Fprintln(w, "Attestations:")
	}
	for _, a := range rec.Attestations {
		state := "valid"
		if a.RevokedAt != nil {
			state = fmt.Sprintf("REVOKED %s by %s: %s", fmtTime(a.RevokedAt), a.RevokedBy, a.RevokeReason)
		} else if a.Expires != nil {
			state = "valid until " + fmtTime(a.Expires)
		}
		fmt.Fprintf(w, "  %s  %s:%s (%s) key %s — %s\n", a.CreatedAt.UTC().Format(time.RFC3339), a.Repository, a.Tag, a.Manifest, a.KeyID, state)
	}
	// 6. History and audit.
	fmt.Fprintln(w, "History:")
	for _, t := range img.History {
		from := string(t.From)
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(w, "  %s  %s → %s  by %s: %s\n", t.At.UTC().Format(time.RFC3339), from, t.To, t.Actor, t.Reason)
	}
	if len(rec.Audit) > 0 {
		fmt.Fprintln(w, "Audit:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range rec.Audit {
			var detail bytes.Buffer
			_ = json.Compact(&detail, e.Detail)
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", e.Seq, e.At.UTC().Format(time.RFC3339), e.Actor, e.Action, detail.String())
		}
		_ = tw.Flush()
	}
}

// orDash2 is prefix+s, or nothing for an empty s.
func orDash2(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
