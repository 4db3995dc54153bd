package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/terratask/terratask/api"
)

// ScheduleListOptions page GET /schedules.
type ScheduleListOptions struct {
	Kind  string // task or drift; "" for both
	Limit int    // 1..1000
	Page  int    // from 1
}

// SchedulePage is a page of GET /schedules, newest first.
type SchedulePage struct {
	Schedules []api.Schedule
	Page
}

const schedulesPath = "/api/v1/schedules"

// ListSchedules lists the org's schedules (GET /schedules).
func (c *Client) ListSchedules(ctx context.Context, o ScheduleListOptions) (SchedulePage, error) {
	q := url.Values{}
	if o.Kind != "" {
		q.Set("kind", o.Kind)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Page > 0 {
		q.Set("page", strconv.Itoa(o.Page))
	}
	var out SchedulePage
	resp, err := c.getJSON(ctx, schedulesPath, q, &out.Schedules)
	out.Page = pageOf(resp.header)
	return out, err
}

// CreateSchedule creates a schedule, a Temporal Schedule that starts tasks
// (POST /schedules).
func (c *Client) CreateSchedule(ctx context.Context, s api.NewSchedule) (api.Schedule, error) {
	var out api.Schedule
	_, err := c.sendJSON(ctx, http.MethodPost, schedulesPath, nil, s, &out)
	return out, err
}

// GetSchedule reads a schedule with its recent and next runs (GET
// /schedules/{id}).
func (c *Client) GetSchedule(ctx context.Context, id string) (api.Schedule, error) {
	var out api.Schedule
	if id == "" {
		return out, errEmptyID
	}
	_, err := c.getJSON(ctx, schedulesPath+"/"+seg(id), nil, &out)
	return out, err
}

// UpdateSchedule changes the fields p sets (PATCH /schedules/{id}).
func (c *Client) UpdateSchedule(ctx context.Context, id string, p api.SchedulePatch) (api.Schedule, error) {
	var out api.Schedule
	if id == "" {
		return out, errEmptyID
	}
	_, err := c.sendJSON(ctx, http.MethodPatch, schedulesPath+"/"+seg(id), nil, p, &out)
	return out, err
}

// DeleteSchedule deletes a schedule; the tasks it started stay (DELETE
// /schedules/{id}).
func (c *Client) DeleteSchedule(ctx context.Context, id string) (api.Schedule, error) {
	var out api.Schedule
	if id == "" {
		return out, errEmptyID
	}
	_, err := c.sendJSON(ctx, http.MethodDelete, schedulesPath+"/"+seg(id), nil, nil, &out)
	return out, err
}

// TriggerSchedule starts a run of a schedule now (POST
// /schedules/{id}/trigger).
func (c *Client) TriggerSchedule(ctx context.Context, id string) (api.Schedule, error) {
	var out api.Schedule
	if id == "" {
		return out, errEmptyID
	}
	_, err := c.sendJSON(ctx, http.MethodPost, schedulesPath+"/"+seg(id)+"/trigger", nil, nil, &out)
	return out, err
}
