package operatorauth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/internal/aztable"
)

// DefaultKeysTable is the API keys table's name when none is given.
const DefaultKeysTable = "boteapikeys"

// keysPartition holds every key: there are few, and one partition lists in
// one request.
const keysPartition = "apikey"

// editAttempts bounds how often TableStore.Edit starts over when another
// writer changed the key between its read and its write.
const editAttempts = 5

// TableStore keeps the keys in an Azure table, one entity per key (row
// key: the key id), so that every server replica authenticates against the
// same keys. An edit writes its key conditionally on the ETag it read (or
// adds it only if absent) and starts over when another writer came first,
// so concurrent rotations and revocations never interleave.
type TableStore struct {
	c    *aztables.Client
	name string
}

// OpenKeysTable returns the keys table name (DefaultKeysTable if empty) of
// svc, creating it first if create is set (local use; in Azure the
// infrastructure creates it).
func OpenKeysTable(ctx context.Context, svc *aztables.ServiceClient, name string, create bool) (*TableStore, error) {
	name = cmp.Or(name, DefaultKeysTable)
	if create {
		if err := aztable.Create(ctx, svc, name); err != nil {
			return nil, err
		}
	}
	return &TableStore{c: svc.NewClient(name), name: name}, nil
}

func (s *TableStore) String() string { return "table " + s.name }

// keyEntity is a KeyEntry as stored: the fields of the keys file, with the
// grants as their JSON (as in the file), so that a key reads the same in a
// table tool as in the file.
type keyEntity struct {
	PartitionKey string
	RowKey       string
	ETag         azcore.ETag `json:"odata.etag,omitempty"`
	Version      int
	Salt         []byte // base64, as in the file
	SHA256       []byte
	Created      time.Time
	Rotated      time.Time `json:",omitzero"`
	Revoked      time.Time `json:",omitzero"`
	Description  string
	Disabled     bool
	Grants       string
}

// Load reads every key.
func (s *TableStore) Load(ctx context.Context) (*KeysFile, error) {
	f, _, err := s.load(ctx)
	return f, err
}

// load reads every key and the ETag of each.
func (s *TableStore) load(ctx context.Context) (*KeysFile, map[string]azcore.ETag, error) {
	f := &KeysFile{Version: KeysFileVersion, Keys: []KeyEntry{}}
	etags := map[string]azcore.ETag{}
	filter := "PartitionKey eq '" + keysPartition + "'"
	p := s.c.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read API keys from %s: %w", s, err)
		}
		for _, raw := range page.Entities {
			var e keyEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, nil, fmt.Errorf("cannot decode API key entity in %s: %w", s, err)
			}
			if e.Version != KeysFileVersion {
				return nil, nil, fmt.Errorf("invalid API key %q in %s: version is %d, want %d", e.RowKey, s, e.Version, KeysFileVersion)
			}
			k := KeyEntry{ID: e.RowKey, Salt: e.Salt, SHA256: e.SHA256, Created: e.Created, Rotated: e.Rotated, Revoked: e.Revoked, Description: e.Description, Disabled: e.Disabled}
			if err := json.Unmarshal([]byte(cmp.Or(e.Grants, "{}")), &k.Grants); err != nil {
				return nil, nil, fmt.Errorf("invalid API key %q in %s: grants: %w", e.RowKey, s, err)
			}
			if err := (KeysFile{Version: KeysFileVersion, Keys: []KeyEntry{k}}).Validate(); err != nil {
				return nil, nil, fmt.Errorf("invalid API key %q in %s: %w", e.RowKey, s, err)
			}
			f.Keys = append(f.Keys, k)
			etags[k.ID] = e.ETag
		}
	}
	return f, etags, nil
}

// Edit reads the keys, applies edit and writes the key id back only if
// nobody changed it since it was read; otherwise it starts over from what
// the other writer stored.
func (s *TableStore) Edit(ctx context.Context, id string, edit func(*KeysFile, time.Time) error) (*KeysFile, error) {
	for range editAttempts {
		f, etags, err := s.load(ctx)
		if err != nil {
			return nil, err
		}
		if err := edit(f, time.Now()); err != nil {
			return nil, err
		}
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("cannot store API key %q: %w", id, err)
		}
		k, err := f.entry(id)
		if err != nil {
			return nil, err
		}
		grants, err := json.Marshal(k.Grants)
		if err != nil {
			return nil, fmt.Errorf("cannot encode API key %q: %w", id, err)
		}
		e, err := json.Marshal(keyEntity{PartitionKey: keysPartition, RowKey: k.ID, Version: KeysFileVersion, Salt: k.Salt, SHA256: k.SHA256,
			Created: k.Created, Rotated: k.Rotated, Revoked: k.Revoked, Description: k.Description, Disabled: k.Disabled, Grants: string(grants)})
		if err != nil {
			return nil, fmt.Errorf("cannot encode API key %q: %w", id, err)
		}
		if etag, ok := etags[id]; ok {
			_, err = s.c.UpdateEntity(ctx, e, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
		} else {
			_, err = s.c.AddEntity(ctx, e, nil)
		}
		var re *azcore.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusPreconditionFailed || re.StatusCode == http.StatusConflict) {
			continue // another writer came first: start over from its result
		}
		if err != nil {
			return nil, fmt.Errorf("cannot store API key %q in %s: %w", id, s, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("cannot store API key %q in %s: changed by another writer %d times in a row", id, s, editAttempts)
}
