package opsclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// Notifications lists a tenant's webhooks (never their secrets).
func (c *Client) Notifications(ctx context.Context, tenant string) ([]opsapitypes.Notification, error) {
	var list opsapitypes.NotificationList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "notifications"), nil, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list the notifications of %s: %w", tenant, err)
	}
	return list.Notifications, nil
}

// CreateNotification adds a webhook; the answer holds its signing secret,
// which the server never shows again.
func (c *Client) CreateNotification(ctx context.Context, tenant string, req opsapitypes.CreateNotificationRequest) (*opsapitypes.NewNotification, error) {
	var n opsapitypes.NewNotification
	if err := c.callJSON(ctx, http.MethodPost, tenantPath(tenant, "notifications"), req, http.StatusCreated, &n); err != nil {
		return nil, fmt.Errorf("cannot add notification %s of %s: %w", req.ID, tenant, err)
	}
	return &n, nil
}

// DeleteNotification deletes a webhook.
func (c *Client) DeleteNotification(ctx context.Context, tenant, id string) (*opsapitypes.Notification, error) {
	var n opsapitypes.Notification
	if err := c.call(ctx, c.http, http.MethodDelete, tenantPath(tenant, "notifications", id), nil, "", nil, http.StatusOK, &n); err != nil {
		return nil, fmt.Errorf("cannot delete notification %s of %s: %w", id, tenant, err)
	}
	return &n, nil
}

// Deliveries is a webhook's delivery log, newest first (limit 0: the
// server's default).
func (c *Client) Deliveries(ctx context.Context, tenant, id string, limit int) ([]opsapitypes.Delivery, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var list opsapitypes.DeliveryList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "notifications", id, "deliveries"), q, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list the deliveries of notification %s of %s: %w", id, tenant, err)
	}
	return list.Deliveries, nil
}
