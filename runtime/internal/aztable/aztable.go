// Package aztable holds what the Azure Table Storage stores of the runtime
// share: creating their table for local use (in Azure the infrastructure
// creates it), reading a storage error's status, rendering times for
// filtered properties.
package aztable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Name is a store's table among the ops server's tables with prefix:
// prefix+suffix, or def when there is no prefix.
func Name(prefix, suffix, def string) string {
	if prefix == "" {
		return def
	}
	return prefix + suffix
}

// Create creates the table name in svc; a table that already exists is
// not an error.
func Create(ctx context.Context, svc *aztables.ServiceClient, name string) error {
	_, err := svc.CreateTable(ctx, name, nil)
	var re *azcore.ResponseError
	if err != nil && !(errors.As(err, &re) && re.ErrorCode == string(aztables.TableAlreadyExists)) {
		return fmt.Errorf("cannot create table %s: %w", name, err)
	}
	return nil
}

// Open returns the client of table name in svc, creating the table first
// if create is set.
func Open(ctx context.Context, svc *aztables.ServiceClient, name string, create bool) (*aztables.Client, error) {
	if create {
		if err := Create(ctx, svc, name); err != nil {
			return nil, err
		}
	}
	return svc.NewClient(name), nil
}

// StatusCode is the HTTP status of a storage error, 0 for any other error
// (or none).
func StatusCode(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// TimeKey renders t (UTC, fixed width) so that string order is time
// order, for properties queries filter on; "" for the zero time.
func TimeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// ChunkBytes is how much UTF-8 one string property of an entity holds
// here: the service allows 64 KiB of UTF-16, and 30 KiB of UTF-8 is at
// most 30 Ki UTF-16 code units.
const ChunkBytes = 30 << 10

// SetData stores data in e as string properties Data0, Data1, ... (never
// splitting a UTF-8 sequence) and their number in Chunks. An entity holds
// at most 1 MiB in all.
func SetData(e map[string]any, data []byte) {
	n := 0
	for len(data) > 0 {
		end := min(ChunkBytes, len(data))
		for end < len(data) && !utf8.RuneStart(data[end]) {
			end--
		}
		e["Data"+strconv.Itoa(n)] = string(data[:end])
		data, n = data[end:], n+1
	}
	e["Chunks"] = n
}

// GetData joins what SetData stored in the entity raw (as listed or
// read) and returns its ETag (odata.etag when listed; "" otherwise).
func GetData(raw []byte) (data []byte, etag string, err error) {
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, "", fmt.Errorf("cannot decode entity: %w", err)
	}
	n, _ := e["Chunks"].(float64)
	var b strings.Builder
	for i := range int(n) {
		s, _ := e["Data"+strconv.Itoa(i)].(string)
		b.WriteString(s)
	}
	etag, _ = e["odata.etag"].(string)
	return []byte(b.String()), etag, nil
}
