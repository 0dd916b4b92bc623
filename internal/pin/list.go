package pin

// Finders returns every file format pin understands, in the order they are
// offered a file. Adding a format is adding a file and a line here.
func Finders() []Finder {
	return []Finder{
		Dockerfile{},
		Kubernetes{},
		Tekton{},
		Helm{},
		Kustomize{},
		Compose{},
		GitHubActions{},
		GitLabCI{},
	}
}
