package kubetest

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Container is a container named name running image.
func Container(name, image string) corev1.Container {
	return corev1.Container{Name: name, Image: image, ImagePullPolicy: corev1.PullIfNotPresent}
}

// PodSpec is a pod spec with containers and no restarts; a bare API server
// has no scheduler or kubelet, so pods stay Pending.
func PodSpec(containers ...corev1.Container) corev1.PodSpec {
	return corev1.PodSpec{Containers: containers, RestartPolicy: corev1.RestartPolicyNever}
}

// Pod is a pod named name in namespace with spec.
func Pod(namespace, name string, spec corev1.PodSpec) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: spec}
}

func template(name string, spec corev1.PodSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: spec}
}

// Deployment is a one-replica deployment named name whose pods have spec.
func Deployment(namespace, name string, spec corev1.PodSpec) *appsv1.Deployment {
	spec.RestartPolicy = corev1.RestartPolicyAlways
	one := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: template(name, spec),
		},
	}
}

// CronJob is an hourly cron job named name whose jobs' pods have spec.
func CronJob(namespace, name string, spec corev1.PodSpec) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				Template: template(name, spec),
			}},
		},
	}
}

// EphemeralContainer is a debug container named name running image, as
// `kubectl debug` adds it.
func EphemeralContainer(name, image string) corev1.EphemeralContainer {
	return corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: name, Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
		Stdin: true, TTY: true,
	}}
}

// Workloads are one object of every kind with a pod template — Deployment,
// StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and CronJob —
// each named name with pods of spec, and a function that creates it.
func Workloads(cs kubernetes.Interface, namespace, name string, spec corev1.PodSpec) []Workload {
	always := spec
	always.RestartPolicy = corev1.RestartPolicyAlways
	one := int32(1)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	meta := metav1.ObjectMeta{Namespace: namespace, Name: name}
	apps, batch, core := cs.AppsV1(), cs.BatchV1(), cs.CoreV1()
	return []Workload{
		{"Deployment", func(ctx context.Context, opts metav1.CreateOptions) error {
			_, err := apps.Deployments(namespace).Create(ctx, Deployment(namespace, name, spec), opts)
			return err
		}},
		{"StatefulSet", func(ctx context.Context, opts metav1.CreateOptions) error {
			_, err := apps.StatefulSets(namespace).Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta,
				Spec: appsv1.StatefulSetSpec{Replicas: &one, Selector: sel, Template: template(name, always)}}, opts)
			return err
		}},
		{"DaemonSet", func(ctx context.Context, opts metav1.CreateOptions) error {
			_, err := apps.DaemonSets(namespace).Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta,
				Spec: appsv1.DaemonSetSpec{Selector: sel, Template: template(name, always)}}, opts)
			return err
		}},
		{"ReplicaSet", func(ctx context.Context, opts metav1.CreateOptions) error {
			_, err := apps.ReplicaSets(namespace).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: meta,
				Spec: appsv1.ReplicaSetSpec{Replicas: &one, Selector: sel, Template: template(name, always)}}, opts)
			return err
		}},
		{"ReplicationController", func(ctx context.Context, opts metav1.CreateOptions) error {
			tmpl := template(name, always)
			_, err := core.ReplicationControllers(namespace).Create(ctx, &corev1.ReplicationController{ObjectMeta: meta,
				Spec: corev1.ReplicationControllerSpec{Replicas: &one, Selector: map[string]string{"app": name}, Template: &tmpl}}, opts)
			return err
		}},
		{"Job", func(ctx context.Context, opts metav1.CreateOptions) error {
			_, err := batch.Jobs(namespace).Create(ctx, &batchv1.Job{ObjectMeta: meta,
				Spec: batchv1.JobSpec{Template: template(name, spec)}}, opts)
			return err
		}},
		{"CronJob", func(ctx context.Context, opts metav1.CreateOptions) error {
			_, err := batch.CronJobs(namespace).Create(ctx, CronJob(namespace, name, spec), opts)
			return err
		}},
	}
}

// Workload is one object with a pod template and how to create it.
type Workload struct {
	Kind   string
	Create func(ctx context.Context, opts metav1.CreateOptions) error
}
