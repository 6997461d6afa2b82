package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// adapter is one wire protocol. frame is called for every frame read (on the
// connection's reader), and reports protocol events with c.signal.
type adapter interface {
	url(base string) string
	hello(c *client) error
	join(c *client, resume bool) error
	publish(c *client, seq uint64, data []byte) error
	frame(c *client, b []byte)
}

func newAdapter(cfg *config) adapter {
	switch cfg.Proto {
	case "centrifugo":
		a := &centrifugoAdapter{}
		if cfg.CentrifugoSecret != "" {
			a.token = hs256Token(cfg.CentrifugoSecret, "roomlog-bench")
		}
		return a
	case "socketio":
		return socketioAdapter{}
	default:
		return roomlogAdapter{}
	}
}

// jsonString is a JSON string of s (room names are plain ASCII here).
func jsonString(s string) string { return strconv.Quote(s) }

// field returns the bytes after key up to the next quote (a string value).
func stringField(b []byte, key string) (string, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return "", false
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return "", false
	}
	return string(b[:j]), true
}

// numberAfter parses the unsigned integer right after key.
func numberAfter(b []byte, key string) (uint64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	return leadingNumber(b[i+len(key):])
}

func leadingNumber(b []byte) (uint64, bool) {
	var n uint64
	k := 0
	for k < len(b) && b[k] >= '0' && b[k] <= '9' {
		n = n*10 + uint64(b[k]-'0')
		k++
	}
	return n, k > 0
}

// --- roomlog: docs/protocol.md ---

type roomlogAdapter struct{}

func (roomlogAdapter) url(base string) string { return base }

func (roomlogAdapter) hello(c *client) error { return nil } // the relay speaks first (welcome)

func (roomlogAdapter) join(c *client, resume bool) error {
	c.smu.Lock()
	since := c.lastPos
	c.smu.Unlock()
	if resume && since != "" {
		return c.write([]byte(`{"op":"join","room":` + jsonString(c.roomName) + `,"since":"` + since + `","id":"j"}`))
	}
	return c.write([]byte(`{"op":"join","room":` + jsonString(c.roomName) + `,"id":"j"}`))
}

func (roomlogAdapter) publish(c *client, seq uint64, data []byte) error {
	b := make([]byte, 0, len(data)+96)
	b = append(b, `{"op":"publish","room":`...)
	b = append(b, jsonString(c.roomName)...)
	b = append(b, `,"event":"m","data":`...)
	b = append(b, data...)
	b = append(b, `,"id":`...)
	b = strconv.AppendUint(b, seq+100, 10)
	b = append(b, '}')
	return c.write(b)
}

func (roomlogAdapter) frame(c *client, b []byte) {
	op, _ := stringField(b, `"op":"`)
	switch op {
	case "message":
		c.deliver(b)
		if i := bytes.LastIndex(b, []byte(`"pos":"`)); i >= 0 {
			if p, ok := stringField(b[i:], `"pos":"`); ok {
				c.smu.Lock()
				c.lastPos = p
				c.smu.Unlock()
			}
		}
	case "ack":
		if bytes.Contains(b, []byte(`"id":"j"`)) {
			if bytes.Contains(b, []byte(`"recovered":false`)) {
				c.w.errorSample("roomlog: resume not recovered: " + string(b))
			}
			if p, ok := stringField(b, `"pos":"`); ok {
				c.smu.Lock()
				if c.lastPos == "" {
					c.lastPos = p
				}
				c.smu.Unlock()
			}
			c.signal(evJoined)
			return
		}
		if id, ok := numberAfter(b, `"id":`); ok && id >= 100 {
			c.ack(id - 100)
		}
	case "welcome":
		c.signal(evConnected)
	case "error":
		c.w.errorSample("roomlog: " + string(b))
		if bytes.Contains(b, []byte(`"id":"j"`)) {
			c.signal(evJoinFailed)
		}
	}
}

// --- Centrifugo: JSON protocol (client protocol v2) ---

type centrifugoAdapter struct{ token string }

func (centrifugoAdapter) url(base string) string { return base }

func (a *centrifugoAdapter) hello(c *client) error {
	if a.token != "" {
		return c.write([]byte(`{"id":1,"connect":{"token":"` + a.token + `","name":"roomlog-bench"}}`))
	}
	return c.write([]byte(`{"id":1,"connect":{"name":"roomlog-bench"}}`))
}

func (a *centrifugoAdapter) join(c *client, resume bool) error {
	c.smu.Lock()
	epoch, off := c.cEpoch, c.cOffset
	c.smu.Unlock()
	if resume && epoch != "" {
		return c.write([]byte(fmt.Sprintf(`{"id":2,"subscribe":{"channel":%s,"recover":true,"epoch":%q,"offset":%d}}`, jsonString(c.roomName), epoch, off)))
	}
	return c.write([]byte(`{"id":2,"subscribe":{"channel":` + jsonString(c.roomName) + `}}`))
}

func (a *centrifugoAdapter) publish(c *client, seq uint64, data []byte) error {
	b := make([]byte, 0, len(data)+96)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, seq+100, 10)
	b = append(b, `,"publish":{"channel":`...)
	b = append(b, jsonString(c.roomName)...)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, "}}"...)
	return c.write(b)
}

// maxOffset is the largest `"offset":N` in b: the stream top of a
// subscribe reply (its publications have smaller ones) or a publication's.
func maxOffset(b []byte) (uint64, bool) {
	var max uint64
	found := false
	key := []byte(`"offset":`)
	for {
		i := bytes.Index(b, key)
		if i < 0 {
			return max, found
		}
		b = b[i+len(key):]
		if n, ok := leadingNumber(b); ok {
			found = true
			if n > max {
				max = n
			}
		}
	}
}

func (a *centrifugoAdapter) frame(c *client, all []byte) {
	for len(all) > 0 {
		var line []byte
		if i := bytes.IndexByte(all, '\n'); i >= 0 {
			line, all = all[:i], all[i+1:]
		} else {
			line, all = all, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if string(line) == "{}" { // ping
			_ = c.write([]byte("{}"))
			continue
		}
		if bytes.HasPrefix(line, []byte(`{"id":`)) {
			id, _ := leadingNumber(line[len(`{"id":`):])
			isErr := bytes.HasPrefix(line[len(`{"id":`)+len(strconv.FormatUint(id, 10)):], []byte(`,"error"`))
			switch {
			case id == 1:
				if isErr {
					c.w.errorSample("centrifugo connect: " + string(line))
					c.signal(evJoinFailed)
				} else {
					c.signal(evConnected)
				}
			case id == 2:
				if isErr {
					c.w.errorSample("centrifugo subscribe: " + string(line))
					c.signal(evJoinFailed)
					continue
				}
				c.deliver(line) // recovered publications
				c.smu.Lock()
				if e, ok := stringField(line, `"epoch":"`); ok {
					c.cEpoch = e
				}
				if o, ok := maxOffset(line); ok && o > c.cOffset {
					c.cOffset = o
				}
				c.smu.Unlock()
				if bytes.Contains(line, []byte(`"was_recovering":true`)) && !bytes.Contains(line, []byte(`"recovered":true`)) {
					c.w.errorSample("centrifugo: resubscribe not recovered: " + string(line))
				}
				c.signal(evJoined)
			case id >= 100:
				if isErr {
					c.w.errorSample("centrifugo publish: " + string(line))
				} else {
					c.ack(id - 100)
				}
			}
			continue
		}
		if bytes.HasPrefix(line, []byte(`{"push":`)) && bytes.Contains(line, []byte(`"pub":`)) {
			c.deliver(line)
			if o, ok := maxOffset(line); ok {
				c.smu.Lock()
				if o > c.cOffset {
					c.cOffset = o
				}
				c.smu.Unlock()
			}
		}
	}
}

// hs256Token is a JWT for Centrifugo's client.token.hmac_secret_key.
func hs256Token(secret, sub string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, time.Now().Add(48*time.Hour).Unix())))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(head + "." + body))
	return head + "." + body + "." + enc.EncodeToString(m.Sum(nil))
}

// --- Socket.IO v5 over Engine.IO v4, WebSocket transport ---
//
// The same client protocol drives the Socket.IO peer (testenv/bench/socketio/server.js) and roomlog's /socket.io/
// (docs/socketio.md), as socket.io-client would over WebSocket alone: Engine.IO's open packet, then CONNECT to
// the main namespace; pongs to the server's pings; join(room, [opts], ack) and publish(room, data, ack) as EVENT
// packets with ack ids. Deliveries are the EVENT packets without an id (the peer's "message", roomlog's
// "publish" with its meta). On roomlog the adapter keeps the last meta.pos and rejoins with {since} after a
// reconnection, as an app does; the peer sends no position, so it rejoins plainly.

type socketioAdapter struct{}

// url maps an endpoint to its Engine.IO WebSocket URL: ws://host:port (the peer), ws://host:port/ws (a relay,
// whose /socket.io/ is beside /ws), or a full /socket.io/ URL as given.
func (socketioAdapter) url(base string) string {
	if strings.Contains(base, "/socket.io/") {
		return base
	}
	base = strings.TrimSuffix(strings.TrimSuffix(base, "/"), "/ws")
	return base + "/socket.io/?EIO=4&transport=websocket"
}

func (socketioAdapter) hello(c *client) error { return nil } // the server speaks first (Engine.IO open)

func (socketioAdapter) join(c *client, resume bool) error {
	c.smu.Lock()
	since := c.lastPos
	c.smu.Unlock()
	if resume && since != "" {
		return c.write([]byte(`421["join",` + jsonString(c.roomName) + `,{"since":"` + since + `"}]`))
	}
	return c.write([]byte(`421["join",` + jsonString(c.roomName) + `]`))
}

func (socketioAdapter) publish(c *client, seq uint64, data []byte) error {
	b := make([]byte, 0, len(data)+64)
	b = append(b, "42"...)
	b = strconv.AppendUint(b, seq+100, 10)
	b = append(b, `["publish",`...)
	b = append(b, jsonString(c.roomName)...)
	b = append(b, ',')
	b = append(b, data...)
	b = append(b, ']')
	return c.write(b)
}

var (
	sioNotOK        = []byte(`"ok":false`)
	sioNotRecovered = []byte(`"recovered":false`)
	sioPos          = []byte(`"pos":"`)
)

func (socketioAdapter) frame(c *client, b []byte) {
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case '0': // Engine.IO open: CONNECT to the main namespace
		_ = c.write([]byte("40"))
	case '2': // Engine.IO ping
		_ = c.write([]byte("3"))
	case '4': // Engine.IO message: a Socket.IO packet
		if len(b) < 2 {
			return
		}
		switch b[1] {
		case '0':
			c.signal(evConnected)
		case '4':
			c.w.errorSample("socket.io connect error: " + string(b))
			c.signal(evJoinFailed)
		case '2':
			c.deliver(b)
			if i := bytes.LastIndex(b, sioPos); i >= 0 { // roomlog's meta.pos
				if p, ok := stringField(b[i:], string(sioPos)); ok {
					c.smu.Lock()
					c.lastPos = p
					c.smu.Unlock()
				}
			}
		case '3':
			id, _ := leadingNumber(b[2:])
			failed := bytes.Contains(b, sioNotOK)
			switch {
			case id == 1 && failed:
				c.w.errorSample("socket.io join: " + string(b))
				c.signal(evJoinFailed)
			case id == 1:
				if bytes.Contains(b, sioNotRecovered) {
					c.w.errorSample("socket.io: resume not recovered: " + string(b))
				}
				if p, ok := stringField(b, string(sioPos)); ok {
					c.smu.Lock()
					if c.lastPos == "" {
						c.lastPos = p
					}
					c.smu.Unlock()
				}
				c.signal(evJoined)
			case id >= 100 && failed:
				c.w.errorSample("socket.io publish: " + string(b))
			case id >= 100:
				c.ack(id - 100)
			}
		}
	}
}
