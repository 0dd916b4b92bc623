package admission

// Names of the objects the shipped manifests create.
const (
	DefaultNamespace = "airlock"
	DefaultService   = "airlock-webhook"
	// ValidatingName and MutatingName are the webhook configuration names
	// (and the webhooks' names inside them).
	ValidatingName = "validate.airlock.dev"
	MutatingName   = "mutate.airlock.dev"
	PolicyName     = "airlock-private-registry-digests"
)
