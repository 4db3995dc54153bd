// Package deployments holds terratask's deployment files: the Dockerfile, a
// docker-compose.yml for one Docker host, Kubernetes manifests under
// kubernetes/, and the config files they mount. It has no code; its tests
// check that those files are well formed and agree with the terratask binary
// (every flag and config key they use exists), so `make test` keeps them true.
package deployments
