package opsapi

import "github.com/botehq/platform/runtime/operatorauth"

// TEMPORARY until operatorauth's role model lands: every operator is admin.
type allGrants struct{}

func (allGrants) IsAdmin() bool       { return true }
func (allGrants) TenantIDs() []string { return nil }

func principalGrants(operatorauth.Principal) grants { return allGrants{} }
