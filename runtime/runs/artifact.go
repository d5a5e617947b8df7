package runs

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Artifact refers to a run's blob in the artifact store (package
// artifacts): the configuration bundle, the saved plan with its working
// directory, the plan as JSON. It names the blob and what it must be (size,
// SHA-256, checked when it is read) and holds no link: to hand an artifact
// to an agent, the dispatcher signs a link to it for that one use.
type Artifact struct {
	Container string `json:"container"`
	Blob      string `json:"blob"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
}

// Validate checks the reference's fields.
func (a *Artifact) Validate() error {
	switch {
	case a == nil:
		return errors.New("artifact reference is missing")
	case a.Container == "":
		return errors.New("artifact container is empty")
	case a.Blob == "":
		return errors.New("artifact blob is empty")
	case a.Size < 0:
		return fmt.Errorf("artifact size %d is negative", a.Size)
	}
	if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("artifact sha256 %q is not a hex SHA-256", a.SHA256)
	}
	return nil
}
