package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/store"
)

const defaultServer = "http://127.0.0.1:5000"

// credentials is the file `airlock login` writes: a token per server.
type credentials struct {
	Current string            `json:"current"`
	Tokens  map[string]string `json:"tokens"`
}

func credentialsPath() (string, error) {
	if p := os.Getenv("AIRLOCK_CREDENTIALS"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "airlock", "credentials.json"), nil
}

func loadCredentials() credentials {
	c := credentials{Tokens: map[string]string{}}
	p, err := credentialsPath()
	if err != nil {
		return c
	}
	b, err := os.ReadFile(p)
	if err == nil {
		_ = json.Unmarshal(b, &c)
	}
	if c.Tokens == nil {
		c.Tokens = map[string]string{}
	}
	return c
}

func normaliseServer(s string) string {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}

// serverFlag adds --server to a command that talks to a server.
func serverFlag(cmd *cobra.Command, s *string) {
	cmd.Flags().StringVar(s, "server", "", "airlock server URL (env AIRLOCK_SERVER; default: the server of `airlock login`, else "+defaultServer+")")
}

// client builds an API client from --server / AIRLOCK_SERVER / login, and AIRLOCK_TOKEN / login.
func client(serverURL string) *server.Client {
	creds := loadCredentials()
	switch {
	case serverURL != "":
	case os.Getenv("AIRLOCK_SERVER") != "":
		serverURL = os.Getenv("AIRLOCK_SERVER")
	case creds.Current != "":
		serverURL = creds.Current
	default:
		serverURL = defaultServer
	}
	serverURL = normaliseServer(serverURL)
	token := os.Getenv("AIRLOCK_TOKEN")
	if token == "" {
		token = creds.Tokens[serverURL]
	}
	return server.NewClient(serverURL, token)
}

func newLogin() *cobra.Command {
	var srv string
	var stdin bool
	cmd := &cobra.Command{
		Use:   "login [--server URL] [--token-stdin]",
		Short: "Store a token for a server so other commands can use it",
		Example: `  airlock login --server http://127.0.0.1:5000 --token-stdin < airlock-data/admin.token
  AIRLOCK_TOKEN=$(cat airlock-data/admin.token) airlock login --server 127.0.0.1:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token := os.Getenv("AIRLOCK_TOKEN")
			if stdin || token == "" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				token = strings.TrimSpace(line)
			}
			if token == "" {
				return usageErr("no token given: pipe it to --token-stdin or set AIRLOCK_TOKEN")
			}
			c := client(srv)
			c.Token = token
			name, role, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			p, err := credentialsPath()
			if err != nil {
				return err
			}
			creds := loadCredentials()
			creds.Current = c.BaseURL
			creds.Tokens[c.BaseURL] = token
			b, _ := json.MarshalIndent(creds, "", "  ")
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s (%s); token saved in %s\n", c.BaseURL, name, role, p)
			return nil
		},
	}
	serverFlag(cmd, &srv)
	cmd.Flags().BoolVar(&stdin, "token-stdin", false, "read the token from standard input")
	return cmd
}

func newToken() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API and registry tokens (admin)"}
	var srv, name, role, expires, output string
	create := &cobra.Command{
		Use:   "create --name N --role puller|pusher|approver|scanner|admin [--expires 720h]",
		Short: "Create a token and print it alone on stdout",
		Example: `  TOKEN=$(airlock token create --name ci --role pusher --expires 720h)
  crane auth login 127.0.0.1:5000 -u ci -p "$TOKEN"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || role == "" {
				return usageErr("--name and --role are required")
			}
			t, err := client(srv).CreateToken(cmd.Context(), server.TokenRequest{Name: name, Role: store.Role(role), Expires: expires})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Token)
			return nil
		},
	}
	serverFlag(create, &srv)
	create.Flags().StringVar(&name, "name", "", "token name (the registry user name)")
	create.Flags().StringVar(&role, "role", "", "puller, pusher, approver, scanner or admin")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 720h or 30d (default: no expiry)")
	list := &cobra.Command{
		Use: "list", Short: "List tokens", Example: "  airlock token list -o json", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			toks, err := client(srv).Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), toks)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tEXPIRES\tREVOKED")
			for _, t := range toks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", t.Name, t.Role, t.CreatedAt.Format(time.RFC3339), fmtTime(t.ExpiresAt), t.Revoked)
			}
			return tw.Flush()
		},
	}
	serverFlag(list, &srv)
	outputFlag(list, &output)
	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a token", Example: "  airlock token revoke ci", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := client(srv).RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			return nil
		},
	}
	serverFlag(revoke, &srv)
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func outputFlag(cmd *cobra.Command, o *string) {
	cmd.Flags().StringVarP(o, "output", "o", "", "output format: json (default: a table for people)")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newDecision(verb, past string) *cobra.Command {
	var srv, reason, expires string
	cmd := &cobra.Command{
		Use:   verb + " DIGEST --reason TEXT",
		Short: map[string]string{"approve": "Approve a quarantined digest so the registry serves it", "reject": "Reject a quarantined digest", "revoke": "Revoke an approved digest: the registry stops serving it at once"}[verb],
		Example: fmt.Sprintf("  airlock %s sha256:4f0c… --reason 'reviewed scan report'", verb) +
			map[string]string{"approve": "\n  airlock approve sha256:4f0c… --reason 'base image for api' --expires 90d"}[verb],
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return usageErr("--reason is required: say why")
			}
			if verb == "approve" {
				return approve(cmd, client(srv), args[0], server.DecisionRequest{Reason: reason, Expires: expires})
			}
			img, err := client(srv).Decide(cmd.Context(), args[0], verb, server.DecisionRequest{Reason: reason, Expires: expires})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", img.Digest, past)
			return nil
		},
	}
	serverFlag(cmd, &srv)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required, recorded in the audit log)")
	if verb == "approve" {
		cmd.Flags().StringVar(&expires, "expires", "", "approval lifetime, e.g. 90d or 2160h (default: no expiry)")
	}
	return cmd
}

func newList() *cobra.Command {
	var srv, state, repo, output string
	cmd := &cobra.Command{
		Use:   "list [--state S] [--repository R] [-o json]",
		Short: "List images the registry holds, with their vetting state",
		Example: `  airlock list
  airlock list --state quarantined -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			imgs, err := client(srv).Images(cmd.Context(), store.ImageFilter{State: store.State(state), Repository: repo})
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), imgs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DIGEST\tSTATE\tREPOSITORIES\tTYPE\tUPDATED")
			for _, i := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.Digest, i.State, strings.Join(i.Repositories, ","), shortType(i), i.UpdatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	serverFlag(cmd, &srv)
	cmd.Flags().StringVar(&state, "state", "", "only this state: quarantined, approved, rejected or revoked")
	cmd.Flags().StringVar(&repo, "repository", "", "only this repository")
	outputFlag(cmd, &output)
	return cmd
}

func shortType(i store.Image) string {
	if i.ArtifactType != "" && !strings.Contains(i.ArtifactType, "image.config") && !strings.Contains(i.ArtifactType, "container.image") {
		return i.ArtifactType
	}
	switch {
	case strings.Contains(i.MediaType, "index") || strings.Contains(i.MediaType, "list"):
		return "index"
	default:
		return "image"
	}
}

func newAudit() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the hash-chained audit log"}
	var srv, subject, action, output string
	var limit int
	list := &cobra.Command{
		Use: "list [--subject S] [--action A]", Short: "List audit entries",
		Example: "  airlock audit list --action request.denied", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			es, err := client(srv).Audit(cmd.Context(), store.AuditFilter{Subject: subject, Action: action, Limit: limit})
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), es)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tSUBJECT\tDETAIL")
			for _, e := range es {
				var detail bytes.Buffer
				_ = json.Compact(&detail, e.Detail)
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.UTC().Format(time.RFC3339), e.Actor, e.Action, e.Subject, detail.String())
			}
			return tw.Flush()
		},
	}
	serverFlag(list, &srv)
	outputFlag(list, &output)
	list.Flags().StringVar(&subject, "subject", "", "only entries about this digest, repository or token")
	list.Flags().StringVar(&action, "action", "", "only this action, e.g. state.approved or request.denied")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many entries")
	verify := &cobra.Command{
		Use: "verify", Short: "Verify the audit log's hash chain (exit 1 if it was edited)",
		Example: "  airlock audit verify", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := client(srv).VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if !v.OK {
				return &exitError{code: exitDenied, err: fmt.Errorf("audit log does not verify after %d good entries: %s", v.Entries, v.Error)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "audit log verifies: %d entries, hash chain intact\n", v.Entries)
			return nil
		},
	}
	serverFlag(verify, &srv)
	cmd.AddCommand(list, verify)
	return cmd
}

// printSource shows the documented source of an imported digest.
func printSource(w io.Writer, raw json.RawMessage) {
	var im store.Import
	if err := json.Unmarshal(raw, &im); err != nil || im.Reference == "" {
		fmt.Fprintf(w, "Source:       %s\n", string(raw))
		return
	}
	fmt.Fprintf(w, "Source:       %s (as given: %s)\n", im.Normalized, im.Reference)
	fmt.Fprintf(w, "  transport:  %s\n", im.Transport)
	if im.Registry != "" {
		fmt.Fprintf(w, "  upstream:   %s\n", im.Registry)
	}
	fmt.Fprintf(w, "  resolved:   %s by %s\n", im.ResolvedAt.UTC().Format(time.RFC3339), im.Actor)
	if im.Platform != "" {
		fmt.Fprintf(w, "  platform:   narrowed to %s\n", im.Platform)
	}
	if im.TagMoved {
		fmt.Fprintf(w, "  TAG MOVED:  %s resolved to %s before\n", im.Normalized, im.PreviousDigest)
	}
	var facts struct {
		Images []struct {
			Digest   string            `json:"digest"`
			Platform string            `json:"platform"`
			Created  *time.Time        `json:"created"`
			Author   string            `json:"author"`
			Labels   map[string]string `json:"labels"`
			History  []struct {
				CreatedBy string `json:"createdBy"`
			} `json:"history"`
		} `json:"images"`
		Attachments []struct {
			Kind   string `json:"kind"`
			Digest string `json:"digest"`
		} `json:"attachments"`
	}
	if json.Unmarshal(im.Facts, &facts) != nil {
		return
	}
	for _, f := range facts.Images {
		line := "  image:      " + f.Digest
		if f.Platform != "" {
			line += " " + f.Platform
		}
		if f.Created != nil {
			line += ", created " + f.Created.UTC().Format(time.RFC3339)
		}
		if f.Author != "" {
			line += ", by " + f.Author
		}
		fmt.Fprintln(w, line+fmt.Sprintf(", %d history steps, %d labels", len(f.History), len(f.Labels)))
	}
	for _, a := range facts.Attachments {
		fmt.Fprintf(w, "  upstream %s found (not verified): %s\n", a.Kind, a.Digest)
	}
	if len(facts.Attachments) == 0 && im.Transport == "registry" {
		fmt.Fprintln(w, "  upstream signatures: none found")
	}
}
