package opsserver

import (
	"context"
	"log/slog"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/audit"
)

// openAudit opens the audit log next to the run state: table
// <table-prefix>audit (boteaudit by default).
func openAudit(ctx context.Context, tables *aztables.ServiceClient, c Config, log *slog.Logger) (*audit.Recorder, error) {
	t, err := audit.Open(ctx, tables, audit.Options{Table: audit.TableName(c.TablePrefix), CreateTable: c.CreateResources})
	if err != nil {
		return nil, err
	}
	return audit.NewRecorder(t, log), nil
}
