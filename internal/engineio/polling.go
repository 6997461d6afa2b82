package engineio

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// HTTP long-polling: a GET waits for what the server has queued; a POST
// carries the client's packets. One of each may be pending per session: a
// second concurrent GET or POST gets HTTP 400 and ends the session, as the
// reference server does.

var noopPayload = []byte{byte(PacketNoop)}

// servePoll answers a GET with the queued packets, waiting until there are
// some, the session closes, or an upgrade needs the poll back.
func (s *Session) servePoll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.ws != nil || s.final {
		s.mu.Unlock()
		s.srv.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	}
	if s.polling {
		s.closeLocked(ReasonTransportError, false)
		s.mu.Unlock()
		s.srv.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	}
	s.polling = true
	// The wait may outlast the server's WriteTimeout; writePoll sets the
	// write deadline again.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	for !s.closed && len(s.queue) == 0 && !s.probed && s.ws == nil {
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-r.Context().Done():
			s.mu.Lock()
			s.polling = false
			s.closeLocked(ReasonTransportError, false) // the client dropped its poll
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
	}
	var body []byte
	switch {
	case s.ws != nil:
		body = noopPayload // upgraded while waiting: release the poll
	default:
		body = AppendPayload(nil, s.queue)
		clear(s.queue)
		s.queue = s.queue[:0]
		s.tookQueueLocked()
		if s.closed {
			if len(body) > 0 {
				body = append(body, payloadSeparator)
			}
			body = AppendPacket(body, Packet{Type: PacketClose})
			s.final = true
			s.srv.remove(s)
		} else if len(body) == 0 {
			body = noopPayload // probed: let the client pause polling
		}
	}
	s.polling = false
	s.mu.Unlock()
	if err := writePoll(w, r, body, s.srv.cfg.WriteTimeout); err != nil {
		s.fail(writeErrorReason(err))
	}
}

// writePoll writes a polling payload as the response.
func writePoll(w http.ResponseWriter, r *http.Request, body []byte, timeout time.Duration) error {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout))
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}

// servePost reads the client's packets and hands its messages to the
// handler, one at a time, on this goroutine: the POST is answered once the
// handler has served them all, so a slow handler slows the client's
// sending, not memory.
func (s *Session) servePost(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.ws != nil || s.closed {
		s.mu.Unlock()
		s.srv.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	}
	if s.posting {
		s.closeLocked(ReasonTransportError, false)
		s.mu.Unlock()
		s.srv.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	}
	s.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()

	if r.Header.Get("Content-Type") == "application/octet-stream" {
		// Engine.IO v4 polling payloads are text; binary is base64.
		s.fail(ReasonParseError)
		s.srv.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.srv.cfg.MaxPayload)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(ReasonTooBig)
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		s.fail(ReasonTransportError)
		return
	}
	errStop := errors.New("stop")
	errServed := errors.New("served") // the handler took the message and closed the session
	err = DecodePayload(body, func(p Packet) error {
		switch p.Type {
		case PacketMessage:
			switch taken, more := s.deliver(Message{Binary: p.Binary, Data: p.Data}); {
			case more:
				return nil
			case taken:
				return errServed // the rest is dropped; the POST is answered
			}
			return errStop
		case PacketPong:
			s.onPong()
		case PacketClose:
			s.fail(ReasonClientClose)
			return errStop
		case PacketPing:
			// In v4 only the server pings.
			s.fail(ReasonParseError)
			return errStop
		}
		return nil // open, upgrade and noop mean nothing here
	})
	switch {
	case errors.Is(err, ErrMalformed):
		s.fail(ReasonParseError)
		s.srv.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	case err != nil && err != errServed && !s.isClosedBy(ReasonClientClose):
		s.srv.refuse(w, http.StatusBadRequest, CodeBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html") // the reference's choice: no download dialog in old browsers
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
}

func (s *Session) isClosedBy(r CloseReason) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed && s.reason == r
}
