package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/scan/vulndb"
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
	var data, output string
	var strict bool
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

Exit codes: 0 imported (skipped records are listed on stderr), 2 a path cannot be read, an
archive is refused or (with --strict) a record is bad, 3 the database cannot be written.`,
		Example: `  airlock db import ~/osv/Debian/all.zip ~/osv/PyPI/all.zip ~/osv/Go/all.zip
  airlock db import ./advisory-database/ --data /var/lib/airlock
  airlock db import GHSA-xxxx-yyyy-zzzz.json --strict -o json`,
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
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			w := cmd.OutOrStdout()
			for _, s := range rep.Sources {
				fmt.Fprintf(w, "%s (%s): %d records, %d added, %d updated, %d skipped\n", s.Path, s.Kind, s.Records, s.Added, s.Updated, s.Skipped)
			}
			fmt.Fprintf(w, "Snapshot: %s\n", rep.Snapshot)
			return nil
		},
	}
	dataFlag(cmd, &data)
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&strict, "strict", false, "fail the whole import on the first bad record instead of skipping it")
	return cmd
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
