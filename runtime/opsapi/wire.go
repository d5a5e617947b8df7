package opsapi

import "github.com/botehq/platform/runtime/opsapitypes"

// The API's wire types live in runtime/opsapitypes, which clients import
// without linking server code; these aliases keep their opsapi names.
type (
	AuditRecord               = opsapitypes.AuditRecord
	AuditPage                 = opsapitypes.AuditPage
	APIKey                    = opsapitypes.APIKey
	CreateKeyRequest          = opsapitypes.CreateKeyRequest
	NewKey                    = opsapitypes.NewKey
	KeyList                   = opsapitypes.KeyList
	Timeouts                  = opsapitypes.Timeouts
	CreateWorkspaceRequest    = opsapitypes.CreateWorkspaceRequest
	UpdateWorkspaceRequest    = opsapitypes.UpdateWorkspaceRequest
	Workspace                 = opsapitypes.Workspace
	WorkspaceList             = opsapitypes.WorkspaceList
	Run                       = opsapitypes.Run
	PlanOptions               = opsapitypes.PlanOptions
	Transition                = opsapitypes.Transition
	RunResult                 = opsapitypes.RunResult
	Changes                   = opsapitypes.Changes
	Diagnostic                = opsapitypes.Diagnostic
	Output                    = opsapitypes.Output
	RunList                   = opsapitypes.RunList
	LogChunk                  = opsapitypes.LogChunk
	FollowFrame               = opsapitypes.FollowFrame
	StateVersion              = opsapitypes.StateVersion
	StateVersionList          = opsapitypes.StateVersionList
	StateRollbackRequest      = opsapitypes.StateRollbackRequest
	Status                    = opsapitypes.Status
	Agent                     = opsapitypes.Agent
	AgentList                 = opsapitypes.AgentList
	Event                     = opsapitypes.Event
	ErrorBody                 = opsapitypes.ErrorBody
	ErrorDetail               = opsapitypes.ErrorDetail
	Health                    = opsapitypes.Health
	Whoami                    = opsapitypes.Whoami
	TenantList                = opsapitypes.TenantList
	Tenant                    = opsapitypes.Tenant
	Variable                  = opsapitypes.Variable
	VariableList              = opsapitypes.VariableList
	SetVariableRequest        = opsapitypes.SetVariableRequest
	ProviderSources           = opsapitypes.ProviderSources
	LockFile                  = opsapitypes.LockFile
	PolicyCheck               = opsapitypes.PolicyCheck
	PolicyResult              = opsapitypes.PolicyResult
	PutPolicyRequest          = opsapitypes.PutPolicyRequest
	Policy                    = opsapitypes.Policy
	PolicyList                = opsapitypes.PolicyList
	CreateNotificationRequest = opsapitypes.CreateNotificationRequest
	Notification              = opsapitypes.Notification
	NewNotification           = opsapitypes.NewNotification
	NotificationList          = opsapitypes.NotificationList
	Delivery                  = opsapitypes.Delivery
	DeliveryAttempt           = opsapitypes.DeliveryAttempt
	DeliveryList              = opsapitypes.DeliveryList
	DriftSchedule             = opsapitypes.DriftSchedule
	DriftStatus               = opsapitypes.DriftStatus
	DriftResource             = opsapitypes.DriftResource
	DriftAttribute            = opsapitypes.DriftAttribute
	DriftList                 = opsapitypes.DriftList
)

// Constants of the API, from opsapitypes.
const (
	APIVersion           = opsapitypes.APIVersion
	CodeConflict         = opsapitypes.CodeConflict
	CodeTooLarge         = opsapitypes.CodeTooLarge
	CodePolicyFailed     = opsapitypes.CodePolicyFailed
	CodePolicyInvalid    = opsapitypes.CodePolicyInvalid
	FrameLog             = opsapitypes.FrameLog
	FrameRun             = opsapitypes.FrameRun
	FrameEnd             = opsapitypes.FrameEnd
	DefaultRunListLimit  = opsapitypes.DefaultRunListLimit
	MaxRunListLimit      = opsapitypes.MaxRunListLimit
	HeaderStateVersion   = opsapitypes.HeaderStateVersion
	HeaderStateSHA256    = opsapitypes.HeaderStateSHA256
	AgentOnline          = opsapitypes.AgentOnline
	AgentOffline         = opsapitypes.AgentOffline
	AgentUnknown         = opsapitypes.AgentUnknown
	AgentDisabled        = opsapitypes.AgentDisabled
	EventStatus          = opsapitypes.EventStatus
	CodeUnauthorized     = opsapitypes.CodeUnauthorized
	CodeForbidden        = opsapitypes.CodeForbidden
	CodeNotFound         = opsapitypes.CodeNotFound
	CodeMethodNotAllowed = opsapitypes.CodeMethodNotAllowed
	CodeBadRequest       = opsapitypes.CodeBadRequest
	CodeUpgradeRequired  = opsapitypes.CodeUpgradeRequired
	CodeInternal         = opsapitypes.CodeInternal
	CodeUnavailable      = opsapitypes.CodeUnavailable
)
