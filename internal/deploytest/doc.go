// Package deploytest holds the tests of the deployment files at the
// repository's root: docker-compose.yml is loaded with the Compose
// specification's own Go loader and checked against the rules it must keep
// (pinned images, health checks, reachable start order, graceful stops,
// complete configuration, trusted proxies), since Docker does not run where
// the tests do.
package deploytest
