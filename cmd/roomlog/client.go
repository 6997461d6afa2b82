package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"
)

// runClient is a small interactive client for trying roomlog out: it joins a
// room, prints every frame the relay sends, and publishes each line typed on
// standard input (as JSON when the line parses, else as a string).
func runClient(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("client", "Joins --room on the relay at --url, prints what arrives, publishes each line of standard input.", stderr)
	var url, room, event string
	fs.StringVar(&url, "url", "ws://127.0.0.1:8080/ws", "relay WebSocket URL")
	fs.StringVar(&room, "room", "lobby", "room to join and publish to")
	fs.StringVar(&event, "event", "chat", "event name of published lines")
	if err := parse(fs, args); err != nil {
		return usageErr(err, stderr)
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", url, err)
	}
	defer ws.Close()
	var wmu sync.Mutex
	send := func(v any) error {
		wmu.Lock()
		defer wmu.Unlock()
		return ws.WriteJSON(v)
	}
	if err := send(map[string]any{"op": "join", "room": room, "id": "join"}); err != nil {
		return err
	}
	readErr := make(chan error, 1)
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			fmt.Fprintf(stdout, "%s\n", b)
		}
	}()
	go func() {
		sc := bufio.NewScanner(stdin)
		for n := 1; sc.Scan(); n++ {
			line := sc.Bytes()
			var data any = string(line)
			if json.Valid(line) {
				data = json.RawMessage(append([]byte(nil), line...))
			}
			if err := send(map[string]any{"op": "publish", "room": room, "event": event, "data": data, "id": strconv.Itoa(n)}); err != nil {
				return
			}
		}
	}()
	select {
	case <-ctx.Done():
		wmu.Lock()
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		wmu.Unlock()
		return nil
	case err := <-readErr:
		if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			return nil
		}
		return fmt.Errorf("connection ended: %w", err)
	}
}
