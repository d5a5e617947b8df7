// Package aztable holds what the Azure Table Storage stores of the runtime
// share: creating their table for local use (in Azure the infrastructure
// creates it), reading a storage error's status, rendering times for
// filtered properties.
package aztable

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

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
