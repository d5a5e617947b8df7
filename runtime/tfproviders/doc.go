// Package tfproviders decides where a run's `terraform init` gets its
// providers, and keeps a deployment agent's shared provider plugin cache.
//
// Sources are the installation methods of Terraform's CLI configuration:
// a filesystem mirror (a directory baked into the agent image or
// mounted), a network mirror (the provider network mirror protocol over
// HTTPS) and `direct` (the providers' origin registries), which an
// air-gapped agent turns off. An agent has its own Sources; a workspace
// can replace its mirrors and turn direct installation off, never on.
// CLIConfig renders them, with the plugin cache, into the file a run's
// Terraform reads through TF_CLI_CONFIG_FILE.
//
// Cache is the plugin cache: Terraform's plugin_cache_dir, shared by the
// agent's runs (and by agent processes sharing a work directory). With a
// dependency lock file Terraform takes a provider from the cache only when
// its checksum is one the lock file records
// (plugin_cache_may_break_dependency_lock_file stays false), so a run
// never gets a version or build its lock file does not allow. Terraform
// does not promise that concurrent inits may share one cache directory,
// so Cache serializes init across runs and processes (a file lock), and
// leases what each run's working directory links to until the run ends.
// A run executes its own copies of the cached packages: Terraform
// rewrites a cached package in place when a run's lock file does not
// confirm it, which must not touch files another run executes.
// It is bounded in size: after each init the least recently used entries
// no run holds are removed until it fits.
//
// Explain turns init's provider installation errors into one diagnostic
// naming the provider and the sources that were tried.
package tfproviders
