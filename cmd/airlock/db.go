package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/scan/vulndb"
	"github.com/airlock-dev/airlock/internal/server"
)

// defaultData is the data directory `airlock serve` uses by default; the
// advisory database lives in it so that a server and the CLI share it.
const defaultData = "./airlock-data"

func dataFlag(cmd *cobra.Command, data *string) {
	cmd.Flags().StringVar(data, "data", "", "data directory holding "+vulndb.FileName+" (env AIRLOCK_DATA; default "+defaultData+", as airlock serve)")
}

func dataDir(flag string) string {
	switch {
	case flag != "":
		return flag
	case os.Getenv("AIRLOCK_DATA") != "":
		return os.Getenv("AIRLOCK_DATA")
	}
	return defaultData
}

func newDB() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the offline vulnerability database (OSV advisories)",
		Long: `The advisory database is a SQLite file, DATA/` + vulndb.FileName + `, that airlock serve and
airlock scan read. Nothing is downloaded: you import OSV records you fetched yourself, for
example osv.dev's per-ecosystem archives (https://osv-vulnerabilities.storage.googleapis.com/
ECOSYSTEM/all.zip), a clone of an advisory repository, or single records.`,
	}
	cmd.AddCommand(newDBImport(), newDBStatus())
	return cmd
}

func newDBImport() *cobra.Command {
	var data, output, srv, cfgFile string
	var strict, noReevaluate bool
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import OSV advisories from directories, JSON/YAML records or all.zip archives",
		Long: `Import loads OSV records from each PATH: a directory (searched recursively for .json,
.yaml, .yml and .zip files; hidden directories skipped), a single record, or a zip of records
such as osv.dev's all.zip, for any ecosystem. A record replaces a stored one with the same id
only if it is newer, so importing in any order gives the same data and the same snapshot
digest.

A record that cannot be used (invalid JSON or YAML, no id or modified time) is skipped and
reported with its file name; --strict makes it fail the import instead. An archive that looks
hostile (a member decompressing past the size limits or at a bomb's ratio, too many members,
a corrupt structure) fails the import. A failed import changes nothing.

Then every approved and quarantined digest is re-evaluated: the inventory its scan stored is
matched against the new data (no image is pulled again). New findings on an approved digest
raise an alert (log, alerts.webhook, metric, audit log) and, when the policy's reevaluation
section calls for it, schedule a revocation after the policy's grace period; the digest stays
approved until then. With --server (or AIRLOCK_SERVER) the running server re-evaluates, reading
the database from its own data directory, which must be --data; without one, the data
directory's store and registry are opened directly (settings from --config or AIRLOCK_CONFIG).

Exit codes: 0 imported and re-evaluated, 1 new findings on an approved digest raised an alert,
2 a path cannot be read, an archive is refused, (with --strict) a record is bad or the server
read other advisory data, 3 the database cannot be written or re-evaluation failed.`,
		Example: `  airlock db import ~/osv/Debian/all.zip ~/osv/PyPI/all.zip ~/osv/Go/all.zip
  airlock db import ./advisory-database/ --data /var/lib/airlock
  airlock db import ./osv/ --data /var/lib/airlock --server https://airlock.example:5000
  airlock db import GHSA-xxxx-yyyy-zzzz.json --strict -o json --no-reevaluate`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("db import requires at least 1 arg: a directory, record file or zip archive")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" {
				return usageErr("-o must be json, not %q", output)
			}
			for _, p := range args {
				if _, err := os.Stat(p); err != nil {
					return usageErr("%v", err)
				}
			}
			db, err := vulndb.Open(cmd.Context(), dataDir(data))
			if err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			defer db.Close()
			rep, err := db.ImportWith(cmd.Context(), vulndb.ImportOptions{Strict: strict}, args...)
			if err != nil {
				if errors.Is(err, vulndb.ErrHostileArchive) || errors.Is(err, vulndb.ErrBadRecord) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
					return &exitError{code: exitUsage, err: fmt.Errorf("%w; nothing was imported", err)}
				}
				return &exitError{code: exitInternal, err: fmt.Errorf("%w; nothing was imported", err)}
			}
			for _, s := range rep.Sources {
				for _, p := range s.Problems {
					fmt.Fprintf(cmd.ErrOrStderr(), "airlock: skipped %s: %s\n", p.File, p.Error)
				}
				if s.Skipped > len(s.Problems) {
					fmt.Fprintf(cmd.ErrOrStderr(), "airlock: … and %d more skipped in %s\n", s.Skipped-len(s.Problems), s.Path)
				}
			}
			var re *server.ReevaluationReport
			if !noReevaluate {
				if re, err = reevaluate(cmd, dataDir(data), srv, cfgFile, rep.Snapshot); err != nil {
					return err
				}
			}
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), struct {
					vulndb.Report
					Reevaluation *server.ReevaluationReport `json:"reevaluation,omitempty"`
				}{rep, re}); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				for _, s := range rep.Sources {
					fmt.Fprintf(w, "%s (%s): %d records, %d added, %d updated, %d skipped\n", s.Path, s.Kind, s.Records, s.Added, s.Updated, s.Skipped)
				}
				fmt.Fprintf(w, "Snapshot: %s\n", rep.Snapshot)
				if re != nil {
					printReevaluation(w, *re)
				}
			}
			if re != nil && re.Alerts > 0 {
				return &exitError{code: exitDenied, err: fmt.Errorf("new findings on %d approved digest(s); see airlock queue", re.Alerts)}
			}
			return nil
		},
	}
	dataFlag(cmd, &data)
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&strict, "strict", false, "fail the whole import on the first bad record instead of skipping it")
	cmd.Flags().StringVar(&srv, "server", "", "airlock server that re-evaluates after the import (env AIRLOCK_SERVER; default: re-evaluate offline in --data)")
	cmd.Flags().StringVar(&cfgFile, "config", "", "configuration of the offline re-evaluation (policy, alerts, storage; env AIRLOCK_CONFIG)")
	cmd.Flags().BoolVar(&noReevaluate, "no-reevaluate", false, "only import; do not match stored inventories again")
	return cmd
}

// reevaluate matches stored inventories against the imported data: on the
// named server, or offline in the data directory when there is a store
// there. nil, nil: nothing to re-evaluate.
func reevaluate(cmd *cobra.Command, data, srv, cfgFile, snapshot string) (*server.ReevaluationReport, error) {
	ctx := cmd.Context()
	if srv == "" {
		srv = os.Getenv("AIRLOCK_SERVER")
	}
	if srv != "" {
		rep, err := client(srv).Reevaluate(ctx)
		if err != nil {
			return nil, err
		}
		if rep.Snapshot != snapshot {
			return &rep, usageErr("the server re-evaluated with advisory snapshot %s, not the %s just imported: import into the server's data directory (--data)", rep.Snapshot, snapshot)
		}
		return &rep, nil
	}
	if cfgFile == "" {
		cfgFile = os.Getenv("AIRLOCK_CONFIG")
	}
	cfg, err := config.Load(cfgFile, os.LookupEnv, nil)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if cfg.Data != data {
		// The files derived from the configured data directory follow --data.
		for _, p := range []*string{&cfg.Store.DSN, &cfg.TokenKeyFile, &cfg.Storage.Filesystem.RootDirectory} {
			if strings.HasPrefix(*p, filepath.Clean(cfg.Data)+string(filepath.Separator)) {
				*p = ""
			}
		}
		cfg.Data = data
		if cfg, err = config.Finish(cfg); err != nil {
			return nil, usageErr("%v", err)
		}
	}
	if _, err := os.Stat(cfg.Store.DSN); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "airlock: no store in %s: nothing to re-evaluate\n", data)
		return nil, nil
	}
	if cfg.Policy.File == "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "airlock: re-evaluating offline with the embedded strict policy; give the server's configuration with --config if it uses another\n")
	}
	d, closeStore, err := server.OpenOffline(ctx, cfg, newLogger(cfg))
	if err != nil {
		return nil, &exitError{code: exitInternal, err: err}
	}
	defer closeStore()
	db, err := vulndb.Open(ctx, data)
	if err != nil {
		return nil, &exitError{code: exitInternal, err: err}
	}
	defer db.Close()
	rep, err := d.Reevaluate(ctx, db, "airlock db import")
	if err != nil {
		return nil, &exitError{code: exitInternal, err: fmt.Errorf("re-evaluation: %w", err)}
	}
	return &rep, nil
}

func printReevaluation(w io.Writer, r server.ReevaluationReport) {
	fmt.Fprintf(w, "Re-evaluated: %d digest(s) with stored scans, %d matched again, %d alert(s)\n", r.Checked, len(r.Images), r.Alerts)
	for _, im := range r.Images {
		line := fmt.Sprintf("  %s %s: %d vulnerability finding(s), %d new, policy %s", im.Digest, im.State, im.Findings, len(im.New), im.Verdict)
		if im.Revocation != nil {
			line += ", revocation scheduled for " + im.Revocation.Due.UTC().Format(time.RFC3339)
		}
		fmt.Fprintln(w, line)
		for _, f := range im.New {
			fmt.Fprintf(w, "    NEW %s %s %s %s (fixed: %s)\n", f.ID, f.Severity, f.Package, f.Version, orDash(f.Fixed))
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", s.Digest, s.Reason)
	}
	for _, img := range r.Executed {
		fmt.Fprintf(w, "  revoked %s: its grace period ended\n", img.Digest)
	}
}

func newDBStatus() *cobra.Command {
	var data, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the advisory database: sources, counts per ecosystem, newest record, snapshot digest",
		Long: `Status reads DATA/` + vulndb.FileName + ` (no server needed): the paths imported and when, the
number of advisories per ecosystem, the newest "modified" time, and the snapshot digest that
every vulnerability finding carries (sha256 over the sorted id and modified time of every
record, so equal data gives an equal digest).`,
		Example: `  airlock db status
  airlock db status --data /var/lib/airlock -o json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("db status takes no arguments (the database is --data DIR/%s)", vulndb.FileName)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return usageErr("-o must be json, not %q", output)
			}
			dir := dataDir(data)
			if _, err := os.Stat(dir); err != nil {
				return usageErr("data directory: %v", err)
			}
			db, err := vulndb.Open(cmd.Context(), dir)
			if err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			defer db.Close()
			st, err := db.Status(cmd.Context())
			if err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), st)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Database:   %s\nSnapshot:   %s\nAdvisories: %d (%d withdrawn)\nNewest:     %s\nUpdated:    %s\n",
				st.Path, st.Snapshot, st.Records, st.Withdrawn, orDash(st.NewestModified), orDash(st.UpdatedAt))
			if len(st.Ecosystems) > 0 {
				fmt.Fprintln(w)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ECOSYSTEM\tADVISORIES")
				ecos := make([]string, 0, len(st.Ecosystems))
				for e := range st.Ecosystems {
					ecos = append(ecos, e)
				}
				sort.Strings(ecos)
				for _, e := range ecos {
					fmt.Fprintf(tw, "%s\t%d\n", e, st.Ecosystems[e])
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if len(st.Sources) > 0 {
				fmt.Fprintln(w)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SOURCE\tKIND\tRECORDS\tSKIPPED\tIMPORTED")
				for _, s := range st.Sources {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", s.Path, s.Kind, s.Records, s.Skipped, s.ImportedAt)
				}
				return tw.Flush()
			}
			fmt.Fprintln(w, "\nNo advisories imported yet: airlock db import PATH (see airlock db import --help).")
			return nil
		},
	}
	dataFlag(cmd, &data)
	outputFlag(cmd, &output)
	return cmd
}
