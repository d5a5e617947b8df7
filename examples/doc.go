// Package examples holds runnable samples of the gateway's client
// libraries: simple (request/reply), chat (topic broadcast among
// connectors) and sidecar (a Node program behind `connector run`). They
// run against the local gateway of `make demo-gateway`; see README.md.
//
// The samples are a module of their own that requires only
// github.com/botehq/platform/runtime: what a developer's program would
// import, and nothing of the test tooling. integration/examples builds and
// runs them as a test.
package examples
