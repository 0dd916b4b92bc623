package admission

import (
	"fmt"
	"strconv"

	k8sjson "sigs.k8s.io/json"
)

// Field is which list of a pod spec a container is in.
type Field string

// The three container lists of a pod spec.
const (
	Containers          Field = "containers"
	InitContainers      Field = "initContainers"
	EphemeralContainers Field = "ephemeralContainers"
)

// ContainerImage is one container's image in an admitted object, with the
// JSON pointer of its image field (for the patch that pins it).
type ContainerImage struct {
	Field     Field
	Index     int
	Container string
	Image     string
	Path      string // JSON pointer, e.g. /spec/template/spec/containers/0/image
}

// Where names the container for people: containers[0] "web".
func (c ContainerImage) Where() string {
	return fmt.Sprintf("%s[%d] %q", c.Field, c.Index, c.Container)
}

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

type podSpec struct {
	Containers          []container `json:"containers"`
	InitContainers      []container `json:"initContainers"`
	EphemeralContainers []container `json:"ephemeralContainers"`
}

type podTemplate struct {
	Spec podSpec `json:"spec"`
}

// kindSpec says where the pod spec of a kind sits.
type kindSpec struct {
	prefix string // JSON pointer of the pod spec
	decode func([]byte) (podSpec, error)
}

type gk struct{ group, kind string }

var kinds = map[gk]kindSpec{
	{"", "Pod"}: {"/spec", func(b []byte) (podSpec, error) {
		var o struct {
			Spec podSpec `json:"spec"`
		}
		err := decodeStrict(b, &o)
		return o.Spec, err
	}},
	{"apps", "Deployment"}:        templated(),
	{"apps", "StatefulSet"}:       templated(),
	{"apps", "DaemonSet"}:         templated(),
	{"apps", "ReplicaSet"}:        templated(),
	{"", "ReplicationController"}: templated(),
	{"batch", "Job"}:              templated(),
	{"batch", "CronJob"}: {"/spec/jobTemplate/spec/template/spec", func(b []byte) (podSpec, error) {
		var o struct {
			Spec struct {
				JobTemplate struct {
					Spec struct {
						Template podTemplate `json:"template"`
					} `json:"spec"`
				} `json:"jobTemplate"`
			} `json:"spec"`
		}
		err := decodeStrict(b, &o)
		return o.Spec.JobTemplate.Spec.Template.Spec, err
	}},
}

func templated() kindSpec {
	return kindSpec{"/spec/template/spec", func(b []byte) (podSpec, error) {
		var o struct {
			Spec struct {
				Template *podTemplate `json:"template"`
			} `json:"spec"`
		}
		if err := decodeStrict(b, &o); err != nil {
			return podSpec{}, err
		}
		if o.Spec.Template == nil {
			return podSpec{}, nil
		}
		return o.Spec.Template.Spec, nil
	}}
}

// decodeStrict decodes the way the API server does: keys are case-sensitive
// (encoding/json would let "Image" stand for "image", so a document could
// show the webhook one image and the API server another), and a duplicate
// key is an error rather than "the last one wins".
func decodeStrict(b []byte, v any) error {
	strict, err := k8sjson.UnmarshalStrict(b, v, k8sjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		// Only duplicate keys are checked: unknown fields are expected,
		// since only the fields judged are decoded.
		return strict[0]
	}
	return nil
}

// Inspected reports whether objects of group/kind carry a pod spec the
// webhook judges.
func Inspected(group, kind string) bool {
	_, ok := kinds[gk{group, kind}]
	return ok
}

// ContainerImages lists every container image of an object of group/kind,
// in the order containers, initContainers, ephemeralContainers. ok is false
// for a kind without a pod spec.
func ContainerImages(group, kind string, object []byte) (imgs []ContainerImage, ok bool, err error) {
	ks, ok := kinds[gk{group, kind}]
	if !ok {
		return nil, false, nil
	}
	spec, err := ks.decode(object)
	if err != nil {
		return nil, true, fmt.Errorf("the %s object is not valid JSON of its kind: %v", kind, err)
	}
	add := func(f Field, cs []container) {
		for i, c := range cs {
			imgs = append(imgs, ContainerImage{Field: f, Index: i, Container: c.Name, Image: c.Image,
				Path: ks.prefix + "/" + string(f) + "/" + strconv.Itoa(i) + "/image"})
		}
	}
	add(Containers, spec.Containers)
	add(InitContainers, spec.InitContainers)
	add(EphemeralContainers, spec.EphemeralContainers)
	return imgs, true, nil
}
