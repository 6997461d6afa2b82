package relay

import (
	"context"
	"net/http"
	"time"

	"github.com/roomlog/roomlog/consumer"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay/auth"
)

// Server-side control (docs/security.md, "Revocation"): the backend API's
// /api/revoke, /api/disconnect and /api/remove append control records
// (record/control.go) and every relay applies them when it folds them:
//
//   - revoke: the fold of the control partition keeps the revocation list
//     (consumer/revoke.go, snapshotted with the rest), so a relay that
//     starts later refuses the same tokens. Admission, auth frames and
//     Socket.IO CONNECTs check it (verifyToken); when a revoke is folded,
//     every local connection whose token it refuses closes with 4010.
//   - disconnect: every local connection of the user closes with 4011; it
//     may reconnect (revoke its tokens to keep it out).
//   - remove: the fold removes the user's connections from the room's
//     presence; each relay unsubscribes its own and tells them (removed).
//
// A token refresh (an auth frame) whose rooms claim no longer allows a room
// the connection is in leaves that room the same way (leaveForbidden).

// Control endpoints of the backend API.
const (
	apiRevoke     = "revoke"
	apiDisconnect = "disconnect"
	apiRemove     = "remove"
)

// Reasons of a removed frame.
const (
	removedByServer = "removed"   // /api/remove
	removedByToken  = "forbidden" // a refreshed token no longer allows the room
)

// DefaultRevocationTTL is how long a revocation lasts when the request
// gives no until: it should be at least the tokens' longest lifetime.
const DefaultRevocationTTL = 24 * time.Hour

// maxRevocationTTL bounds until: a revocation is kept (and snapshotted) for
// at most this long after its request.
const maxRevocationTTL = 366 * 24 * time.Hour

func isControlEndpoint(endpoint string) bool {
	return endpoint == apiRevoke || endpoint == apiDisconnect || endpoint == apiRemove
}

// serveControl appends a control request's record and answers once this
// relay has folded (and so applied) it.
func (s *Server) serveControl(w http.ResponseWriter, ctx context.Context, endpoint string, body []byte) {
	req, ferr := decodeControlRequest(endpoint, body)
	if ferr == nil {
		var ev *record.Event
		if ev, ferr = s.controlEvent(endpoint, &req, time.Now()); ferr == nil {
			if !s.apiEnsure(w, ctx, ev.Room) {
				return
			}
			s.commitControl(w, ctx, ev)
			return
		}
	}
	s.countLimit("api_bad_request")
	httpError(w, http.StatusBadRequest, string(ferr.Code), ferr.Message)
}

// controlEvent is the record of a decoded control request at now.
func (s *Server) controlEvent(endpoint string, r *controlRequest, now time.Time) (*record.Event, *frameError) {
	switch endpoint {
	case apiDisconnect:
		return &record.Event{Type: record.TypeDisconnect, Room: record.ControlKey, User: r.User}, nil
	case apiRemove:
		return &record.Event{Type: record.TypeRemove, Room: r.Room, User: r.User}, nil
	}
	nowMs := now.UnixMilli()
	v := record.Revocation{JTI: r.JTI}
	if r.IssuedBefore != nil {
		v.IssuedBefore = *r.IssuedBefore * 1000
	} else if r.JTI == "" {
		v.IssuedBefore = nowMs // a user alone: every token issued so far
	}
	if r.Until != nil {
		v.Until = *r.Until * 1000
	} else {
		v.Until = max(nowMs, v.IssuedBefore) + s.cfg.RevocationTTL.Milliseconds()
	}
	switch {
	case v.Until <= nowMs:
		return nil, errorf(CodeBadRequest, "until is in the past: the tokens it covers have expired")
	case v.Until > nowMs+maxRevocationTTL.Milliseconds():
		return nil, errorf(CodeBadRequest, "until is more than %v ahead", maxRevocationTTL)
	}
	if err := v.Validate(); err != nil {
		return nil, errorf(CodeBadRequest, "%v", err)
	}
	return &record.Event{Type: record.TypeRevoke, Room: record.ControlKey, User: r.User, Revoke: v}, nil
}

// commitControl appends ev and answers with its position once folded here.
func (s *Server) commitControl(w http.ResponseWriter, ctx context.Context, ev *record.Event) {
	res, folded, ok := s.apiCommit(w, ctx, ev)
	switch {
	case !ok:
	case !folded:
		writeJSON(w, http.StatusGatewayTimeout, appendAPIAnswer(nil, res.pos, ack{}, errorf(CodeTimeout, "the record is in the log, but this relay has not folded it yet")))
	case res.code == consumer.CodeRevocationsFull:
		writeJSON(w, http.StatusInsufficientStorage, appendAPIAnswer(nil, res.pos, ack{}, errorf(ErrorCode(res.code), "the revocation list holds %d entries; wait for some to expire", consumer.MaxRevocations)))
	default:
		writeJSON(w, http.StatusOK, appendAPIAnswer(nil, res.pos, ack{}, nil))
	}
}

// controlPartition is the partition whose fold keeps the revocation list.
func (s *Server) controlPartition() *consumer.Partition {
	return s.cons.State().Partition(record.PartitionOf(record.ControlKey, s.partitions))
}

// revoked reports whether the revocation list refuses p's token now.
func (s *Server) revoked(p *auth.Principal) bool {
	if p == nil || p.Anonymous {
		return false
	}
	t := consumer.Token{User: p.User, JTI: p.JTI}
	if !p.IssuedAt.IsZero() {
		t.IssuedAt = p.IssuedAt.UnixMilli()
	}
	return s.controlPartition().Revoked(t, time.Now().UnixMilli())
}

// verifyToken checks a token (auth) and the revocation list.
func (s *Server) verifyToken(tok string) (*auth.Principal, *frameError) {
	p, ferr := s.sec.verifier.verify(tok)
	if ferr != nil {
		return nil, ferr
	}
	if s.revoked(p) {
		s.countLimit("revoked")
		return nil, errorf(CodeUnauthorized, "token revoked")
	}
	return p, nil
}

// deliverControl applies a folded revoke, disconnect or remove record to
// this relay's connections. It runs on the consumer goroutine and never
// blocks: closing and queueing frames do not wait.
func (s *Server) deliverControl(d *consumer.Delivery) {
	switch d.Event.Type {
	case record.TypeRevoke:
		if d.Result.Code != "" {
			return
		}
		for _, c := range s.localConns() {
			if s.revoked(c.sec.p.Load()) {
				c.closeFor("close_revoked", DisconnectRevoked)
			}
		}
	case record.TypeDisconnect:
		for _, c := range s.localConns() {
			if p := c.sec.p.Load(); p != nil && !p.Anonymous && p.User == d.Event.User {
				c.closeFor("close_disconnected", DisconnectByServer)
			}
		}
	case record.TypeRemove:
		for i := range d.Result.Left {
			l := &d.Result.Left[i]
			if c := s.ownConn(l.Member.Conn); c != nil {
				c.removedFrom(l.Room, removedByServer, &d.Pos)
			}
		}
	}
}

// closeIfRevoked closes the connection when its token is revoked. It runs
// once the connection is registered and its principal stored: a revoke
// folded between the token's check and then is caught here, and one folded
// later by deliverControl.
func (c *conn) closeIfRevoked() {
	if c.s.revoked(c.sec.p.Load()) {
		c.closeFor("close_revoked", DisconnectRevoked)
	}
}

// localConns copies out this relay's authenticated connections, so the
// caller checks them without holding connsMu (the revocation list takes a
// partition's lock, which comes first in the lock order).
func (s *Server) localConns() []*conn {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		if c.sec != nil {
			out = append(out, c)
		}
	}
	return out
}

// removedFrom takes the connection out of room (the log has it out
// already, or is told by the caller) and tells the client why.
func (c *conn) removedFrom(room, reason string, pos *record.Pos) {
	c.mu.Lock()
	in := c.rooms.remove(room)
	c.mu.Unlock()
	if !in {
		return
	}
	c.s.hub.remove(room, c)
	c.send(c.enc.removed(room, reason, pos))
}

// leaveForbidden runs on the reader after a token refresh: the connection
// leaves every room p no longer allows it to join, as if it had sent leave
// (the leave record updates presence on every relay), and is told so. In a
// room it may still join but no longer see the presence of, its joined and
// left events stop.
func (c *conn) leaveForbidden(p *auth.Principal) {
	c.mu.Lock()
	var gone, muted []string
	c.rooms.each(func(room string, j *joined) {
		switch {
		case !p.Perms.Allows(auth.Join, room):
			gone = append(gone, room)
		case j.presence && !p.Perms.Allows(auth.Presence, room):
			muted = append(muted, room)
		}
	})
	for _, room := range muted {
		// A copy: the consumer may be reading the join (joinFolded); a
		// join not yet folded subscribes without presence.
		nj := *c.rooms.get(room)
		nj.presence = false
		c.rooms.set(room, &nj)
	}
	c.mu.Unlock()
	for _, room := range muted {
		c.s.hub.mutePresence(room, c)
	}
	for _, room := range gone {
		c.removedFrom(room, removedByToken, nil)
		c.s.produce(&record.Event{Type: record.TypeLeave, Room: room, From: c.id, User: p.User}, nil)
	}
}
