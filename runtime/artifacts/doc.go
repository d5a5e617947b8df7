// Package artifacts keeps what a Terraform run needs besides its record:
// the configuration bundle an operator uploads, the working directory with
// the saved plan (so the apply applies exactly that plan, on any agent of
// the tenant), and the run's log, all in one Azure Blob container.
//
// Bundles and working directories are the archives of package tfarchive.
//
// Blob names are "<tenant>/<workspace>/<run>/<kind>"; an uploaded archive
// is written once (If-None-Match) and referenced by a runs.Artifact
// carrying its size and SHA-256, which Open verifies and which checks that
// the reference belongs to the caller's tenant. To hand an artifact to an
// agent, the dispatcher signs a link to it with a claimcheck.Store opened
// on the same container (a read-only SAS link scoped to that one blob).
//
// A run's log is an append blob: AppendLog adds whole lines at a known
// position, so a batch delivered twice is written once and batches stay in
// order; ReadLog reads from an offset, so a follower (`opsbot logs -f`)
// resumes where it stopped. An append blob holds at most 50,000 blocks;
// with batches every 200 ms that is close to three hours of continuous
// output, so agents should batch by size as well as by time.
package artifacts
