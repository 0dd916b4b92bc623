package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server"
)

func newServe() *cobra.Command {
	var cfgFile string
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the private registry, its gate and the API",
		Long: `Serve the OCI distribution API under /v2/ with a gate that refuses manifests and blobs
of digests that are not approved, the registry token endpoint /token, the API under /api/v1,
/healthz, /readyz and /metrics, and on --webhook-addr the Kubernetes admission webhook over TLS
(docs/admission.md). Every setting comes from --config, AIRLOCK_* variables or flags.`,
		Example: `  airlock serve --addr 127.0.0.1:5000 --data ./airlock-data
  airlock serve --config airlock.yaml --allow-unvetted 'cache/**'
  airlock serve --print-config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgFile == "" {
				cfgFile = os.Getenv("AIRLOCK_CONFIG")
			}
			cfg, err := config.Load(cfgFile, os.LookupEnv, cmd.Flags())
			if err != nil {
				return usageErr("%v", err)
			}
			if printConfig {
				fmt.Fprint(cmd.OutOrStdout(), cfg.YAML())
				return nil
			}
			return serve(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML configuration file (env AIRLOCK_CONFIG)")
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration and exit")
	config.RegisterFlags(cmd.Flags())
	// The issue and the docs name the webhook listener --webhook-addr.
	cmd.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "webhook-addr" {
			name = "admission-webhook-addr"
		}
		return pflag.NormalizedName(name)
	})
	return cmd
}

func newLogger(c config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func serve(ctx context.Context, cfg config.Config) error {
	log := newLogger(cfg)
	slog.SetDefault(log)
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	if srv.AdminTokenCreated != "" {
		fmt.Fprintf(os.Stderr, "airlock: first start: admin token written to %s (mode 0600); use it with AIRLOCK_TOKEN=$(cat %s)\n", srv.AdminTokenCreated, srv.AdminTokenCreated)
	}
	if srv.Decider.KeyCreated != "" {
		fmt.Fprintf(os.Stderr, "airlock: first start: signing key for approval attestations created in %s (ECDSA P-256, mode 0600); verifiers need its public key: airlock keys public > airlock.pub\n", srv.Decider.KeyCreated)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("listen on %s: %w", cfg.Addr, err)}
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	scheme := "http"
	errc := make(chan error, 1)
	go func() {
		if cfg.TLS.Cert != "" {
			errc <- hs.ServeTLS(ln, cfg.TLS.Cert, cfg.TLS.Key)
			return
		}
		errc <- hs.Serve(ln)
	}()
	if cfg.TLS.Cert != "" {
		scheme = "https"
	}
	log.Info("airlock serving", "url", scheme+"://"+ln.Addr().String(), "registryHost", cfg.RegistryHost,
		"data", cfg.Data, "allowUnvetted", strings.Join(cfg.AllowUnvetted, ","))
	if srv.WebhookEnabled() {
		if err := startWebhook(ctx, srv, log, errc); err != nil {
			hs.Close()
			return err
		}
	}
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		log.Info("shutting down")
		return hs.Shutdown(sctx)
	}
}

// startWebhook serves the admission webhook on its own TLS listener; its
// end is sent to errc like the main listener's.
func startWebhook(ctx context.Context, srv *server.Server, log *slog.Logger, errc chan<- error) error {
	addr := srv.Config.Admission.WebhookAddr
	cert, createdCA, err := srv.WebhookCertificate()
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	if createdCA != "" {
		fmt.Fprintf(os.Stderr, "airlock: first start: self-signed admission webhook certificate created in %s (key mode 0600); its CA bundle is %s: airlock admission manifests --ca-bundle %s\n", srv.Config.Data, createdCA, createdCA)
	}
	wln, err := net.Listen("tcp", addr)
	if err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("listen on %s for the admission webhook: %w; set --webhook-addr (off: no webhook)", addr, err)}
	}
	go func() {
		if err := srv.ServeWebhook(ctx, wln, cert); err != nil {
			select {
			case errc <- fmt.Errorf("admission webhook: %w", err):
			default:
			}
		}
	}()
	log.Info("admission webhook serving", "url", "https://"+wln.Addr().String(), "registryHosts", strings.Join(srv.Config.Admission.RegistryHosts, ","),
		"mode", srv.Config.Admission.Mode, "exempt", strings.Join(srv.Config.Admission.Exempt, ","))
	return nil
}
