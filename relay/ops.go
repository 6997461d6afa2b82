package relay

import (
	"github.com/roomlog/roomlog/internal/trunc"
	"github.com/roomlog/roomlog/record"
	"github.com/roomlog/roomlog/relay/auth"
)

// The op table: everything the relay knows about each client op, in one
// place. Every way in (the WebSocket protocol, the backend API, a future
// protocol) decodes its input into a clientFrame and goes through this
// table for validation (validateFrame), permissions and membership
// (conn.run), the record the op appends (opSpec.event) and its handler.
// Adding an op means one entry here, its validator and handler, and its
// section in docs/protocol.md.

// Client ops.
const (
	opJoin     = "join"
	opLeave    = "leave"
	opPublish  = "publish"
	opSet      = "set"
	opDel      = "del"
	opIncr     = "incr"
	opCAS      = "cas"
	opGet      = "get"
	opPresence = "presence"
	opHistory  = "history"
	opPing     = "ping"
)

// Backend API endpoints (api.go) that accept an op.
const (
	apiPublish = "publish"
	apiState   = "state"
)

// opSpec describes one op.
type opSpec struct {
	// roomless ops (ping) name no room and need no permission.
	roomless bool
	// perm is the permission the op needs on its room; join with
	// presence also needs auth.Presence (perms).
	perm auth.Perm
	// member: the connection must be in the room (not_joined otherwise).
	member bool
	// api is the backend API endpoint that accepts the op, or "".
	api string
	// validate checks the op's own fields and fills the parsed ones,
	// after the id, op and room are checked.
	validate func(f *clientFrame) *frameError
	// event is the record the op appends, without the sender's fields
	// (From, User, Req, Relay, Session); nil for reads.
	event func(f *clientFrame) *record.Event
	// serve runs the op for a connection, once it is admitted.
	serve func(c *conn, f *clientFrame)
}

// ops is the op table. It is filled in init because handlers refer back to
// it (appendOp).
var ops map[string]*opSpec

func init() {
	ops = map[string]*opSpec{
		opJoin: {
			perm: auth.Join, validate: validateJoin, serve: (*conn).join,
			event: func(f *clientFrame) *record.Event { return &record.Event{Type: record.TypeJoin, Room: f.Room} },
		},
		opLeave: {
			perm: auth.Join, member: true, serve: (*conn).leave,
			event: func(f *clientFrame) *record.Event { return &record.Event{Type: record.TypeLeave, Room: f.Room} },
		},
		opPublish: {
			perm: auth.Publish, api: apiPublish, validate: validatePublish, serve: (*conn).publish,
			event: func(f *clientFrame) *record.Event {
				return &record.Event{Type: record.TypePublish, Room: f.Room, Event: f.Event, Data: f.Data, MID: f.MID}
			},
		},
		opSet: {
			perm: auth.State, member: true, api: apiState, validate: validateValue, serve: (*conn).appendOp,
			event: func(f *clientFrame) *record.Event {
				return &record.Event{Type: record.TypeSet, Room: f.Room, Key: *f.Key, Data: f.Value}
			},
		},
		opDel: {
			perm: auth.State, member: true, api: apiState, validate: validateKey, serve: (*conn).appendOp,
			event: func(f *clientFrame) *record.Event {
				return &record.Event{Type: record.TypeDel, Room: f.Room, Key: *f.Key}
			},
		},
		opIncr: {
			perm: auth.State, member: true, api: apiState, validate: validateIncr, serve: (*conn).appendOp,
			event: func(f *clientFrame) *record.Event {
				return &record.Event{Type: record.TypeIncr, Room: f.Room, Key: *f.Key, Delta: f.delta}
			},
		},
		opCAS: {
			perm: auth.State, member: true, api: apiState, validate: validateCAS, serve: (*conn).appendOp,
			event: func(f *clientFrame) *record.Event {
				return &record.Event{Type: record.TypeCAS, Room: f.Room, Key: *f.Key, Data: f.Value, Version: f.version}
			},
		},
		opGet:      {perm: auth.Join, member: true, validate: validateGet, serve: answer((*Server).get)},
		opPresence: {perm: auth.Presence, member: true, validate: validatePresence, serve: answer((*Server).presence)},
		opHistory:  {perm: auth.Join, member: true, validate: validateHistory, serve: answer((*Server).history)},
		opPing:     {roomless: true, serve: (*conn).pong},
	}
}

// lookupOp returns op's entry, or unknown_op.
func lookupOp(op string) (*opSpec, *frameError) {
	if spec := ops[op]; spec != nil {
		return spec, nil
	}
	if op == "" {
		return nil, errorf(CodeUnknownOp, "frame has no op")
	}
	return nil, errorf(CodeUnknownOp, "unknown op %q", trunc.String(op, 32))
}

// perms lists the permissions f needs on its room.
func (o *opSpec) perms(f *clientFrame) []auth.Perm {
	if o.roomless {
		return nil
	}
	if f.Op == opJoin && f.Presence {
		return []auth.Perm{o.perm, auth.Presence}
	}
	return []auth.Perm{o.perm}
}

// answer adapts a read (which answers from the folded state, whatever the
// protocol) to a connection's handler.
func answer(read func(s *Server, c *conn, f *clientFrame) (ack, *frameError)) func(c *conn, f *clientFrame) {
	return func(c *conn, f *clientFrame) {
		a, ferr := read(c.s, c, f)
		if ferr != nil {
			c.sendError(f.ID, ferr)
			return
		}
		c.reply(f.ID, a)
	}
}

// run admits a decoded, valid frame (draining, permissions, membership) and
// serves it.
func (c *conn) run(f *clientFrame) {
	spec := ops[f.Op]
	if c.s.draining.Load() {
		c.sendError(f.ID, errorf(CodeShuttingDown, "relay is shutting down; reconnect"))
		return
	}
	if ferr := c.authorize(spec, f); ferr != nil {
		c.sendError(f.ID, ferr)
		return
	}
	if spec.member && c.room(f.Room) == nil {
		c.sendError(f.ID, errorf(CodeNotJoined, "not in room %q: join it first", f.Room))
		return
	}
	if !spec.roomless && c.s.fol != nil {
		ctx, cancel := c.s.readDeadline()
		err := c.s.ensureRoom(ctx, f.Room)
		cancel()
		if err != nil {
			c.sendError(f.ID, errorf(CodeLogUnavailable, "this relay could not load the room's partition from the log; retry: %v", err))
			return
		}
	}
	spec.serve(c, f)
}
