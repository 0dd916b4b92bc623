package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock-dev/airlock/internal/admission"
	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/store"
)

// newAdmission assembles the Kubernetes admission webhook on this server's
// store and registry: approvals come from the store, attestations are read
// from the registry's own storage and verified with the configured key (by
// default the key this server signs with).
func (s *Server) newAdmission(ctx context.Context, reg prometheus.Registerer) (*admission.Webhook, error) {
	ac := s.Config.Admission
	// Exemptions are configuration only; each start records them, as it
	// records allowUnvetted, and each admission one decides is audited again.
	for _, g := range ac.Exempt {
		detail, _ := json.Marshal(map[string]string{"namespaceGlob": g})
		if _, err := s.Store.Audit(ctx, store.AuditEntry{Actor: "airlock serve", Action: "serve.admission-exempt", Subject: g, Detail: detail}); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		s.Log.Warn("namespaces exempt from admission", "glob", g)
	}
	var key crypto.PublicKey = s.Decider.Signer.Public()
	if ac.KeyFile != "" {
		var err error
		if key, err = attest.LoadPublicKey(ac.KeyFile); err != nil {
			return nil, fmt.Errorf("admission.keyFile: %w", err)
		}
	}
	idx, err := admission.NewIndex(admission.IndexOptions{
		Store: s.Store, Key: key, ReadManifest: s.Registry.Image, ResolveTag: s.Registry.ResolveTag,
		MaxStale: ac.MaxStale, Log: s.Log.With("component", "admission"),
	})
	if err != nil {
		return nil, err
	}
	modes, err := admission.ParseNamespaceModes(ac.Namespaces)
	if err != nil {
		return nil, err
	}
	return admission.New(admission.Config{
		RegistryHosts: ac.RegistryHosts, Mode: admission.Mode(ac.Mode), Namespaces: modes, Exempt: ac.Exempt,
		PodsOnly: ac.PodsOnly, MapExternal: ac.MapExternal, Mappings: s.Importer.Mappings, MaxRequestBytes: ac.MaxRequestBytes,
	}, idx, s.Log.With("component", "admission"), admission.NewMetrics(reg))
}

// WebhookEnabled reports whether the configuration asks for a webhook listener.
func (s *Server) WebhookEnabled() bool {
	a := s.Config.Admission.WebhookAddr
	return a != "" && a != "off"
}

// WebhookCertificate is the webhook's TLS certificate: admission.tlsCert/Key,
// else the main tls.cert/key, else one generated into the data directory on
// the first start (createdCA is then the path of its CA bundle).
func (s *Server) WebhookCertificate() (cert tls.Certificate, createdCA string, err error) {
	a, t := s.Config.Admission, s.Config.TLS
	switch {
	case a.TLSCert != "":
		cert, err = tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
	case t.Cert != "":
		cert, err = tls.LoadX509KeyPair(t.Cert, t.Key)
	default:
		hosts := a.TLSHosts
		if len(hosts) == 0 {
			hosts = admission.DefaultHosts()
		}
		var ca string
		var created bool
		cert, ca, created, err = admission.LoadOrCreateCertificate(s.Config.Data, hosts)
		if created {
			createdCA = ca
		}
	}
	if err != nil {
		return cert, "", fmt.Errorf("webhook TLS certificate: %w", err)
	}
	return cert, createdCA, nil
}

// ServeWebhook serves the admission webhook over TLS on ln until ctx ends.
func (s *Server) ServeWebhook(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	return s.Admission.Serve(ctx, ln, cert)
}
