package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
)

var errNotArray = errors.New("not a JSON array")

// splitArray returns the elements of a JSON array, each the exact bytes of
// the input (surrounding spaces trimmed). b must be valid JSON: the decoder
// has checked it with json.Valid, so only strings and nesting need
// tracking.
func splitArray(b []byte) ([]json.RawMessage, error) {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, errNotArray
	}
	inner := b[1 : len(b)-1]
	if len(bytes.TrimSpace(inner)) == 0 {
		return []json.RawMessage{}, nil
	}
	var out []json.RawMessage
	depth, start := 0, 0
	inString, escaped := false, false
	for i, c := range inner {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ',' && depth == 0:
			out = append(out, bytes.TrimSpace(inner[start:i]))
			start = i + 1
		}
	}
	return append(out, bytes.TrimSpace(inner[start:])), nil
}

// checkPlaceholders checks that every placeholder of a binary packet's
// payload, {"_placeholder":true,"num":N}, names an attachment: N an integer
// with 0 <= N < n, as socket.io-parser's reconstructPacket requires (it
// throws "illegal attachments" otherwise).
func checkPlaceholders(data json.RawMessage, n int) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return malformed(ErrPayload, "invalid JSON")
	}
	return walkPlaceholders(v, n)
}

func walkPlaceholders(v any, n int) error {
	switch v := v.(type) {
	case map[string]any:
		if v["_placeholder"] == true {
			num, ok := v["num"].(json.Number)
			if !ok {
				return malformed(ErrAttachments, "placeholder without a num")
			}
			f, err := num.Float64()
			if err != nil || f != math.Trunc(f) || f < 0 || f >= float64(n) {
				return malformed(ErrAttachments, "placeholder num %s, with %d attachments", num, n)
			}
			return nil
		}
		for _, e := range v {
			if err := walkPlaceholders(e, n); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := walkPlaceholders(e, n); err != nil {
				return err
			}
		}
	}
	return nil
}
