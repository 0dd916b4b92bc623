package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/airlock-dev/airlock/internal/admission"
)

// DefaultManifestRegistry is the registry host of the committed deploy/ manifests.
const defaultManifestRegistry = "registry.example.com"

func newAdmission() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admission",
		Short: "Kubernetes admission: manifests and certificates for the webhook",
		Long: `The admission webhook runs inside airlock serve (--webhook-addr). These commands
produce what a cluster needs to call it: the install manifests, webhook
configurations and ValidatingAdmissionPolicies, and a CA with a serving certificate.`,
		Example: `  airlock admission cert --out ./webhook-tls
  airlock admission manifests --registry-host registry.corp.example --cert-dir ./webhook-tls | kubectl apply -f -`,
		Args: admissionNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newAdmissionManifests(), newAdmissionCert())
	return cmd
}

func newAdmissionManifests() *cobra.Command {
	var o admission.ManifestOptions
	var certDir, outDir, output string
	cmd := &cobra.Command{
		Use:   "manifests",
		Short: "Print the Kubernetes manifests of the admission webhook and its policy fallback",
		Long: `Print the install of Airlock in a cluster as one YAML stream: the namespace, data
volume, Deployment and Services of airlock serve; the Mutating- and
ValidatingWebhookConfiguration (failurePolicy: Fail, kube-system and airlock's own
namespace excluded); and ValidatingAdmissionPolicies with bindings that keep enforcing
"private registry host + @sha256 digest" in CEL when the webhook is down.

With --cert-dir (made by airlock admission cert) the CA bundle is injected into the
webhook configurations and the serving certificate is added as a Secret. With --out
the files are written to a directory (deploy/ holds them for the default options).`,
		Example: `  airlock admission manifests --registry-host registry.corp.example --cert-dir ./webhook-tls | kubectl apply -f -
  airlock admission manifests --out deploy
  airlock admission manifests -o json`,
		Args: admissionNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" && output != "yaml" {
				return usageErr("-o %q: want yaml or json", output)
			}
			if certDir != "" {
				var err error
				if o.CABundle, err = os.ReadFile(filepath.Join(certDir, "ca.crt")); err == nil {
					if o.TLSCert, err = os.ReadFile(filepath.Join(certDir, "tls.crt")); err == nil {
						o.TLSKey, err = os.ReadFile(filepath.Join(certDir, "tls.key"))
					}
				}
				if err != nil {
					return usageErr("--cert-dir: %v; create the files with airlock admission cert --out %s", err, certDir)
				}
			}
			files, err := admission.Manifests(o)
			if err != nil {
				return usageErr("%v", err)
			}
			if outDir != "" {
				if err := os.MkdirAll(outDir, 0o755); err != nil {
					return err
				}
				for _, f := range files {
					if err := os.WriteFile(filepath.Join(outDir, f.Name), f.Content, 0o644); err != nil {
						return err
					}
				}
				return nil
			}
			stream := admission.Join(files)
			if output == "json" {
				list, err := yamlStreamToList(stream)
				if err != nil {
					return err
				}
				stream = list
			}
			_, err = cmd.OutOrStdout().Write(stream)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&o.RegistryHosts, "registry-host", []string{defaultManifestRegistry}, "private registry host pods may pull from (repeatable; the first is airlock's registryHost)")
	cmd.Flags().StringVar(&o.Namespace, "namespace", admission.DefaultNamespace, "namespace airlock runs in (excluded from admission)")
	cmd.Flags().StringVar(&o.Image, "image", admission.DefaultImage, "airlock container image")
	cmd.Flags().StringVar(&certDir, "cert-dir", "", "directory with ca.crt, tls.crt and tls.key (airlock admission cert)")
	cmd.Flags().StringVar(&outDir, "out", "", "write airlock.yaml, webhooks.yaml and policy.yaml to this directory instead of printing")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: yaml (default) or json (a v1 List)")
	return cmd
}

// yamlStreamToList turns a YAML stream into a JSON v1 List.
func yamlStreamToList(stream []byte) ([]byte, error) {
	list := struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}{APIVersion: "v1", Kind: "List"}
	for _, doc := range bytes.Split(stream, []byte("\n---\n")) {
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("render json: %w", err)
		}
		if s := strings.TrimSpace(string(j)); s == "null" || s == "" {
			continue
		}
		list.Items = append(list.Items, j)
	}
	b, err := json.MarshalIndent(list, "", "  ")
	return append(b, '\n'), err
}

func newAdmissionCert() *cobra.Command {
	var out, namespace string
	var hosts []string
	var validity time.Duration
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Create a CA and a serving certificate for the webhook Service",
		Long: `Create ca.crt (the caBundle of the webhook configurations), tls.crt and tls.key (mode
0600) for the webhook Service's DNS names. Pass the directory to
airlock admission manifests --cert-dir to inject the CA bundle and add the Secret.`,
		Example: `  airlock admission cert --out ./webhook-tls
  airlock admission cert --out ./webhook-tls --host webhook.corp.example --validity 8760h`,
		Args: admissionNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("--out DIR is required")
			}
			if validity <= 0 {
				return usageErr("--validity must be positive")
			}
			names := append(admission.ServiceHosts(admission.DefaultService, namespace), hosts...)
			c, err := admission.GenerateCertificates(names, validity)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			for _, f := range []struct {
				name string
				b    []byte
				mode os.FileMode
			}{{"ca.crt", c.CA, 0o644}, {"tls.crt", c.Cert, 0o644}, {"tls.key", c.Key, 0o600}} {
				p := filepath.Join(out, f.name)
				if _, err := os.Stat(p); err == nil {
					return usageErr("%s exists; remove it or choose another --out", p)
				}
				if err := os.WriteFile(p, f.b, f.mode); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/ca.crt, tls.crt and tls.key (mode 0600) for %s\n", out, strings.Join(names, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write ca.crt, tls.crt and tls.key to")
	cmd.Flags().StringVar(&namespace, "namespace", admission.DefaultNamespace, "namespace of the webhook Service")
	cmd.Flags().StringArrayVar(&hosts, "host", nil, "extra DNS name or IP the certificate covers (repeatable)")
	cmd.Flags().DurationVar(&validity, "validity", 5*365*24*time.Hour, "how long the certificates are valid")
	return cmd
}

// admissionNoArgs refuses arguments as a usage error (exit 2).
func admissionNoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("%s takes no arguments, got %q; see %s --help", cmd.CommandPath(), args, cmd.CommandPath())
	}
	return nil
}
