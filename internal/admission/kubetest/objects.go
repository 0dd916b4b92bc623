package kubetest

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
