package opsapitypes

// ProviderSources are a workspace's provider sources: where its runs'
// terraform init gets providers on the agent (tfproviders.Sources). Its
// mirrors replace the agent's; NoDirect turns installation from the
// origin registries off, and a workspace cannot turn it back on. The
// server checks it (absolute directory, https URL).
type ProviderSources struct {
	FilesystemMirror string `json:"filesystem_mirror,omitempty"`
	NetworkMirror    string `json:"network_mirror,omitempty"`
	NoDirect         bool   `json:"no_direct,omitempty"`
}

// LockFile is the dependency lock file (.terraform.lock.hcl) a plan's
// terraform init left.
type LockFile struct {
	// Changed: init created or changed it; commit Content to the
	// configuration (opsbot runs lockfile RUN writes it).
	Changed bool `json:"changed"`
	// Created: the configuration had none.
	Created bool   `json:"created,omitempty"`
	Content string `json:"content,omitempty"`
	// Truncated: over 64 KiB, Content is left out.
	Truncated bool `json:"truncated,omitempty"`
}
