package admission

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Files a self-signed webhook certificate is kept in (in the data directory).
const (
	CAFile   = "admission-ca.crt"
	CertFile = "admission.crt"
	KeyFile  = "admission.key"
)

// ServiceHosts are the DNS names of the webhook Service the manifests
// create, for a certificate the API server accepts.
func ServiceHosts(service, namespace string) []string {
	return []string{service, service + "." + namespace, service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local"}
}

// DefaultHosts are the names a generated certificate covers when none are
// configured: the in-cluster Service of the shipped manifests and loopback.
func DefaultHosts() []string {
	return append(ServiceHosts(DefaultService, DefaultNamespace), "localhost", "127.0.0.1", "::1")
}

// Certificates is a CA and a serving certificate it signed, in PEM.
type Certificates struct {
	CA   []byte // the caBundle of the webhook configurations
	Cert []byte
	Key  []byte
}

// GenerateCertificates makes a CA and a serving certificate for hosts (DNS
// names or IP addresses), both ECDSA P-256, valid for validity.
func GenerateCertificates(hosts []string, validity time.Duration) (Certificates, error) {
	var out Certificates
	if len(hosts) == 0 {
		return out, errors.New("a certificate needs at least one host name")
	}
	now := time.Now().Add(-5 * time.Minute)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return out, err
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
		return n
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "airlock admission CA"},
		NotBefore: now, NotAfter: now.Add(validity), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return out, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return out, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now, NotAfter: now.Add(validity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return out, fmt.Errorf("create serving certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return out, err
	}
	out.CA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	out.Cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	out.Key = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	return out, nil
}

// LoadOrCreateCertificate loads the webhook certificate from dir, or on the
// first start generates a CA and a certificate for hosts there (the key mode
// 0600). created tells the caller to say where the CA bundle is.
func LoadOrCreateCertificate(dir string, hosts []string) (cert tls.Certificate, caPath string, created bool, err error) {
	caPath = filepath.Join(dir, CAFile)
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if _, serr := os.Stat(keyPath); serr == nil {
		cert, err = tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return cert, caPath, false, fmt.Errorf("webhook certificate in %s: %w; delete %s, %s and %s to generate new ones", dir, err, certPath, keyPath, caPath)
		}
		return cert, caPath, false, nil
	}
	c, err := GenerateCertificates(hosts, 5*365*24*time.Hour)
	if err != nil {
		return cert, caPath, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, caPath, false, err
	}
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{{caPath, c.CA, 0o644}, {certPath, c.Cert, 0o644}, {keyPath + ".tmp", c.Key, 0o600}} {
		if err := os.WriteFile(f.path, f.b, f.mode); err != nil {
			return cert, caPath, false, fmt.Errorf("write webhook certificate: %w", err)
		}
	}
	// The key appears last and whole: its presence means the set is complete.
	if err := os.Rename(keyPath+".tmp", keyPath); err != nil {
		return cert, caPath, false, err
	}
	cert, err = tls.X509KeyPair(c.Cert, c.Key)
	return cert, caPath, true, err
}

// Serve serves the webhook over TLS on ln until ctx ends.
func (w *Webhook) Serve(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	hs := &http.Server{
		Handler:           w,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	}
}
