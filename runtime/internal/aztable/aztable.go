// Package aztable holds what the Azure Table Storage stores of the runtime
// share: creating their table for local use (in Azure the infrastructure
// creates it).
package aztable

import (
	"context"
	"errors"
	"fmt"

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
