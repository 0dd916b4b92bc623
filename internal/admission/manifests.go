package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// ManifestOptions shape the Kubernetes manifests of a cluster install.
type ManifestOptions struct {
	Namespace     string   // default DefaultNamespace
	Image         string   // airlock's own image
	RegistryHosts []string // the private registry as pods name it; the first is airlock's registryHost
	// CABundle is the PEM CA the API server trusts the webhook with; empty
	// leaves caBundle out (inject it with `airlock admission manifests --cert-dir`).
	CABundle []byte
	// TLSCert and TLSKey, when given, add the Secret the Deployment mounts.
	TLSCert, TLSKey []byte
}

// DefaultImage is the airlock image the manifests run when none is given.
const DefaultImage = "ghcr.io/airlock-dev/airlock:latest"

// TLSSecret is the Secret holding the webhook's serving certificate.
const TLSSecret = "airlock-webhook-tls"

// ManifestFile is one file of the install.
type ManifestFile struct {
	Name    string
	Content []byte
}

// inspectedRules are the resources whose pod specs the webhook judges:
// every kind ContainerImages knows, and the kubectl debug subresource.
func inspectedRules() []admissionregistrationv1.RuleWithOperations {
	rule := func(group string, resources ...string) admissionregistrationv1.RuleWithOperations {
		scope := admissionregistrationv1.NamespacedScope
		return admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: resources, Scope: &scope},
		}
	}
	return []admissionregistrationv1.RuleWithOperations{
		rule("", "pods", "pods/ephemeralcontainers", "replicationcontrollers"),
		rule("apps", "deployments", "statefulsets", "daemonsets", "replicasets"),
		rule("batch", "jobs", "cronjobs"),
	}
}

// excluded keeps the control plane's and airlock's own namespaces out, so
// the webhook can never deny the pods that would bring it back.
func excluded(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", ns},
	}}}
}

func ptr[T any](v T) *T { return &v }

// Manifests renders the install: airlock itself (Namespace, data volume,
// Deployment, Services), the webhook configurations, and the
// ValidatingAdmissionPolicies that keep enforcing the private registry and
// digests with no webhook at all.
func Manifests(o ManifestOptions) ([]ManifestFile, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if _, err := newHostSet(o.RegistryHosts); err != nil {
		return nil, err
	}
	if (len(o.TLSCert) == 0) != (len(o.TLSKey) == 0) {
		return nil, errors.New("the webhook Secret needs both the certificate and the key")
	}
	install, err := installObjects(o)
	if err != nil {
		return nil, err
	}
	webhooks := webhookObjects(o)
	policies, err := PolicyObjects(o.Namespace, o.RegistryHosts)
	if err != nil {
		return nil, err
	}
	var out []ManifestFile
	for _, f := range []struct {
		name, comment string
		objs          []any
	}{
		{"airlock.yaml", "Airlock itself: its namespace, data volume, server and the Services of its registry and webhook.", install},
		{"webhooks.yaml", "The validating and mutating admission webhooks (failurePolicy: Fail). caBundle: see docs/admission.md, cert setup.", webhooks},
		{"policy.yaml", "ValidatingAdmissionPolicies (CEL, no network): private registry host and @sha256 digest, enforced even with the webhook down.", policies},
	} {
		b, err := render(f.comment, f.objs)
		if err != nil {
			return nil, err
		}
		out = append(out, ManifestFile{Name: f.name, Content: b})
	}
	return out, nil
}

// Join concatenates manifest files into one YAML stream.
func Join(files []ManifestFile) []byte {
	var b bytes.Buffer
	for _, f := range files {
		b.Write(f.Content)
	}
	return b.Bytes()
}

func installObjects(o ManifestOptions) ([]any, error) {
	labels := map[string]string{"app.kubernetes.io/name": "airlock"}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels}
	}
	tm := func(apiVersion, kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
	}
	objs := []any{&corev1.Namespace{TypeMeta: tm("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: o.Namespace, Labels: labels}}}
	if len(o.TLSCert) > 0 {
		objs = append(objs, &corev1.Secret{TypeMeta: tm("v1", "Secret"), ObjectMeta: meta(TLSSecret), Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: o.TLSCert, corev1.TLSPrivateKeyKey: o.TLSKey}})
	}
	objs = append(objs, &corev1.PersistentVolumeClaim{TypeMeta: tm("v1", "PersistentVolumeClaim"), ObjectMeta: meta("airlock-data"),
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("50Gi")}}}})
	args := []string{"serve", "--addr", ":5000", "--data", "/var/lib/airlock", "--registry-host", o.RegistryHosts[0],
		"--webhook-addr", ":8443", "--admission-tls-cert", "/etc/airlock/webhook/tls.crt", "--admission-tls-key", "/etc/airlock/webhook/tls.key"}
	for _, h := range o.RegistryHosts {
		args = append(args, "--admission-registry-hosts", h)
	}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("webhook"), Scheme: corev1.URISchemeHTTPS}},
			PeriodSeconds: 5}
	}
	objs = append(objs, &appsv1.Deployment{TypeMeta: tm("apps/v1", "Deployment"), ObjectMeta: meta("airlock"),
		Spec: appsv1.DeploymentSpec{
			// One replica: the embedded SQLite store has one writer. Run
			// several on PostgreSQL; the ValidatingAdmissionPolicy covers the
			// moments no replica answers.
			Replicas: ptr(int32(1)),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)), FSGroup: ptr(int64(65532)),
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{
					Name: "airlock", Image: o.Image, Args: args,
					Ports:          []corev1.ContainerPort{{Name: "registry", ContainerPort: 5000}, {Name: "webhook", ContainerPort: 8443}},
					ReadinessProbe: probe("/readyz"), LivenessProbe: probe("/healthz"),
					SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
						Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/airlock"}, {Name: "webhook-tls", MountPath: "/etc/airlock/webhook", ReadOnly: true}},
				}},
				Volumes: []corev1.Volume{
					{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "airlock-data"}}},
					{Name: "webhook-tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: TLSSecret}}},
				},
			}},
		}})
	objs = append(objs,
		&corev1.Service{TypeMeta: tm("v1", "Service"), ObjectMeta: meta("airlock"), Spec: corev1.ServiceSpec{Selector: labels,
			Ports: []corev1.ServicePort{{Name: "registry", Port: 5000, TargetPort: intstr.FromString("registry")}}}},
		&corev1.Service{TypeMeta: tm("v1", "Service"), ObjectMeta: meta(DefaultService), Spec: corev1.ServiceSpec{Selector: labels,
			Ports: []corev1.ServicePort{{Name: "webhook", Port: 443, TargetPort: intstr.FromString("webhook")}}}},
	)
	return objs, nil
}

func webhookObjects(o ManifestOptions) []any {
	client := func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: o.Namespace, Name: DefaultService, Path: ptr(path), Port: ptr(int32(443))},
			CABundle: o.CABundle,
		}
	}
	fail := admissionregistrationv1.Fail
	equivalent := admissionregistrationv1.Equivalent
	return []any{
		&admissionregistrationv1.MutatingWebhookConfiguration{
			TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
			ObjectMeta: metav1.ObjectMeta{Name: MutatingName},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name: MutatingName, ClientConfig: client(MutatePath), Rules: inspectedRules(),
				FailurePolicy: &fail, MatchPolicy: &equivalent, NamespaceSelector: excluded(o.Namespace),
				SideEffects:    ptr(admissionregistrationv1.SideEffectClassNone),
				TimeoutSeconds: ptr(int32(5)), AdmissionReviewVersions: []string{"v1"},
				ReinvocationPolicy: ptr(admissionregistrationv1.IfNeededReinvocationPolicy),
			}},
		},
		&admissionregistrationv1.ValidatingWebhookConfiguration{
			TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
			ObjectMeta: metav1.ObjectMeta{Name: ValidatingName},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name: ValidatingName, ClientConfig: client(ValidatePath), Rules: inspectedRules(),
				FailurePolicy: &fail, MatchPolicy: &equivalent, NamespaceSelector: excluded(o.Namespace),
				// Exemptions are audited, except for dry-run requests.
				SideEffects:    ptr(admissionregistrationv1.SideEffectClassNoneOnDryRun),
				TimeoutSeconds: ptr(int32(5)), AdmissionReviewVersions: []string{"v1"},
			}},
		},
	}
}

// ImagePattern is the RE2 expression (CEL matches()) an image must match to
// pass the ValidatingAdmissionPolicy: one of hosts exactly, a repository
// path, an optional tag, and a sha256 digest.
func ImagePattern(hosts []string) (string, error) {
	hs, err := newHostSet(hosts)
	if err != nil {
		return "", err
	}
	var alts []string
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" && hs.has(h) {
			alts = append(alts, regexp.QuoteMeta(strings.ToLower(h)))
		}
	}
	return `^(` + strings.Join(alts, "|") + `)/[a-z0-9]+((\.|_|__|-+|/)[a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[a-f0-9]{64}$`, nil
}

// policyKinds are the three shapes of pod spec: one policy each, so every
// expression type-checks against the schema of every kind it matches.
var policyKinds = []struct {
	suffix string
	rules  []admissionregistrationv1.NamedRuleWithOperations
	spec   string // CEL expression of the pod spec
}{
	{"pods", []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: namedRule("", "pods", "pods/ephemeralcontainers")}}, "object.spec"},
	{"workloads", []admissionregistrationv1.NamedRuleWithOperations{
		{RuleWithOperations: namedRule("", "replicationcontrollers")},
		{RuleWithOperations: namedRule("apps", "deployments", "statefulsets", "daemonsets", "replicasets")},
		{RuleWithOperations: namedRule("batch", "jobs")},
	}, "object.spec.template.spec"},
	{"cronjobs", []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: namedRule("batch", "cronjobs")}}, "object.spec.jobTemplate.spec.template.spec"},
}

func namedRule(group string, resources ...string) admissionregistrationv1.RuleWithOperations {
	scope := admissionregistrationv1.NamespacedScope
	return admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: resources, Scope: &scope},
	}
}

// PolicyObjects are the ValidatingAdmissionPolicies and their bindings
// (Deny) enforcing "private registry host + @sha256 digest" on every
// container list of every inspected kind.
func PolicyObjects(namespace string, hosts []string) ([]any, error) {
	pattern, err := ImagePattern(hosts)
	if err != nil {
		return nil, err
	}
	quoted, _ := json.Marshal(pattern) // a CEL double-quoted string literal
	fail := admissionregistrationv1.Fail
	var out []any
	for _, pk := range policyKinds {
		name := PolicyName + "-" + pk.suffix
		// Every list is optional, and so is the template of a
		// ReplicationController: a missing list is no container.
		list := func(root, field string) string {
			spec := root + strings.TrimPrefix(pk.spec, "object")
			guard := ""
			if pk.suffix == "workloads" {
				guard = "has(" + root + ".spec.template) && "
			}
			return "(" + guard + "has(" + spec + "." + field + ") ? " + spec + "." + field + " : [])"
		}
		named := func(l string) string { return l + ".map(c, c.name + '=' + (has(c.image) ? c.image : ''))" }
		refused := func(v string) string {
			return "variables." + v + ".filter(c, !has(c.image) || !c.image.matches(" + string(quoted) + ")).map(c, c.name + '=' + (has(c.image) ? c.image : ''))"
		}
		out = append(out,
			&admissionregistrationv1.ValidatingAdmissionPolicy{
				TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
					FailurePolicy: &fail,
					MatchConstraints: &admissionregistrationv1.MatchResources{
						ResourceRules: pk.rules, NamespaceSelector: excluded(namespace),
					},
					// Containers and ephemeral containers are different types,
					// so they are filtered apart. As in the webhook, an UPDATE
					// is judged on the images it sets: name=image pairs the old
					// object had already pass.
					Variables: []admissionregistrationv1.Variable{
						{Name: "containers", Expression: list("object", "containers") + " + " + list("object", "initContainers")},
						{Name: "ephemeral", Expression: list("object", "ephemeralContainers")},
						{Name: "old", Expression: "request.operation == 'UPDATE' && oldObject != null ? " +
							named(list("oldObject", "containers")) + " + " + named(list("oldObject", "initContainers")) + " + " +
							named(list("oldObject", "ephemeralContainers")) + " : []"},
						{Name: "bad", Expression: "(" + refused("containers") + " + " + refused("ephemeral") + ").filter(b, !(b in variables.old))"},
					},
					Validations: []admissionregistrationv1.Validation{{
						Expression: "size(variables.bad) == 0",
						MessageExpression: "'airlock policy: images must come from " + strings.Join(hosts, " or ") +
							" and be pinned by @sha256 digest; refused: ' + variables.bad.join(', ')",
						Reason: ptr(metav1.StatusReasonForbidden),
					}},
				},
			},
			&admissionregistrationv1.ValidatingAdmissionPolicyBinding{
				TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
					PolicyName: name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				},
			})
	}
	return out, nil
}

// render writes objects as a YAML stream, leaving out the empty fields typed
// objects carry (creationTimestamp: null, status: {}).
func render(comment string, objs []any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# " + comment + "\n# Generated by `airlock admission manifests`; do not edit.\n")
	for _, o := range objs {
		j, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			return nil, err
		}
		prune(m)
		y, err := yaml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("render manifest: %w", err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

// prune drops null values and empty objects, recursively.
func prune(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		for k, c := range t {
			if prune(c) {
				delete(t, k)
			}
		}
		return len(t) == 0
	case []any:
		for _, c := range t {
			prune(c)
		}
	}
	return false
}
