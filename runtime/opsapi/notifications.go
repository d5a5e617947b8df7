package opsapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/operatorauth"
)

// Notifications (docs/notifications.md): webhooks of a tenant. Readers
// list them, operators read their delivery log, approvers add and delete
// them (a webhook learns of every run of the tenant). The secret is in the
// creation's answer only.
func (s *Server) notificationRoutes() []route {
	const one = "/v1/tenants/{tenant}/notifications/{notification}"
	return []route{
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/notifications", role: operatorauth.RoleReader, handler: s.needNotifications(s.listNotifications)},
		{method: http.MethodPost, path: "/v1/tenants/{tenant}/notifications", role: operatorauth.RoleApprover, handler: s.needNotifications(s.createNotification)},
		{method: http.MethodDelete, path: one, role: operatorauth.RoleApprover, handler: s.needNotifications(s.deleteNotification)},
		{method: http.MethodGet, path: one + "/deliveries", role: operatorauth.RoleOperator, handler: s.needNotifications(s.listDeliveries)},
	}
}

func (s *Server) needNotifications(h http.HandlerFunc) http.HandlerFunc {
	return s.needRuns(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Notifications == nil {
			writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, "notifications are not configured on this server")
			return
		}
		h(w, r)
	})
}

func apiNotification(d notify.Destination) Notification {
	out := Notification{Tenant: string(d.Tenant), ID: d.ID, URL: notify.RedactURL(d.URL), Workspace: string(d.Workspace), Description: d.Description,
		CreatedAt: d.CreatedAt.UTC(), CreatedBy: d.CreatedBy}
	for _, e := range d.Events {
		out.Events = append(out.Events, string(e))
	}
	return out
}

func (s *Server) notifyError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, notify.ErrNotFound):
		writeError(w, r, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, notify.ErrExists):
		writeError(w, r, http.StatusConflict, CodeConflict, err.Error())
	default:
		s.internalError(w, r, err)
	}
}

func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request) {
	ds, err := s.cfg.Notifications.Destinations(r.Context(), pathTenant(r))
	if err != nil {
		s.notifyError(w, r, err)
		return
	}
	out := NotificationList{Notifications: make([]Notification, len(ds))}
	for i, d := range ds {
		out.Notifications[i] = apiNotification(d)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createNotification(w http.ResponseWriter, r *http.Request) {
	var req CreateNotificationRequest
	if !decodeBody(w, r, &req) {
		return
	}
	workspace, ok := optionalWorkspace(w, r, req.Workspace)
	if !ok {
		return
	}
	d := notify.Destination{Tenant: pathTenant(r), ID: req.ID, URL: req.URL, Workspace: workspace, Description: req.Description,
		Secret: notify.NewSecret(), CreatedAt: s.cfg.Now().UTC(), CreatedBy: operator(r)}
	for _, e := range req.Events {
		d.Events = append(d.Events, notify.EventType(e))
	}
	if err := d.Validate(s.cfg.WebhookAllowHTTP); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	if err := s.cfg.Notifications.AddDestination(r.Context(), d); err != nil {
		s.notifyError(w, r, err)
		return
	}
	noteDetail(w, "notification %s to %s", d.ID, notify.RedactURL(d.URL))
	created := apiNotification(d)
	created.URL = d.URL
	writeJSON(w, http.StatusCreated, NewNotification{Notification: created, Secret: d.Secret})
}

// deleteNotification deletes a webhook and answers it; its pending
// deliveries end as failed.
func (s *Server) deleteNotification(w http.ResponseWriter, r *http.Request) {
	tenant, id := pathTenant(r), r.PathValue("notification")
	ds, err := s.cfg.Notifications.Destinations(r.Context(), tenant)
	if err != nil {
		s.notifyError(w, r, err)
		return
	}
	i := slices.IndexFunc(ds, func(d notify.Destination) bool { return d.ID == id })
	if i < 0 {
		writeError(w, r, http.StatusNotFound, CodeNotFound, "tenant "+string(tenant)+" has no notification "+id)
		return
	}
	if err := s.cfg.Notifications.DeleteDestination(r.Context(), tenant, id); err != nil {
		s.notifyError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiNotification(ds[i]))
}

// listDeliveries is a webhook's delivery log, newest first (?limit=,
// default 50, at most 500).
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeError(w, r, http.StatusBadRequest, CodeBadRequest, "limit "+strconv.Quote(v)+" must be between 1 and 500")
			return
		}
		limit = n
	}
	tenant, id := pathTenant(r), r.PathValue("notification")
	ds, err := s.cfg.Notifications.Deliveries(r.Context(), tenant, id, limit)
	if err != nil {
		s.notifyError(w, r, err)
		return
	}
	out := DeliveryList{Deliveries: make([]Delivery, len(ds))}
	for i, d := range ds {
		out.Deliveries[i] = apiDelivery(d)
	}
	writeJSON(w, http.StatusOK, out)
}

func apiDelivery(d notify.Delivery) Delivery {
	out := Delivery{ID: d.ID, Notification: d.Destination, EventType: string(d.Event.Type), Workspace: string(d.Event.Workspace),
		Created: d.Created.UTC(), State: string(d.State), Tries: d.Tries, Attempts: make([]DeliveryAttempt, len(d.Attempts))}
	if d.Event.Run != nil {
		out.Run = d.Event.Run.ID
	}
	if d.State == notify.Pending {
		due := d.Due.UTC()
		out.NextAttempt = &due
	}
	for i, a := range d.Attempts {
		out.Attempts[i] = DeliveryAttempt{At: a.At.UTC(), Status: a.Status, Error: a.Error, DurationMS: a.Duration.Milliseconds()}
	}
	return out
}
