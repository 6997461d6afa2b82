// Package logview is what the log tools (cmd/roomlog replay, state, export) and the relay's operator console
// (relay/admin.go) share: a record as JSON (RecordView), a room's state at a point rebuilt with the relays' own
// fold (Fold, Describe), the filters by room, event, type, sender, user and time (Filter), and the export file
// format (ExportHeader, ExportRecord, ExportTrailer). Both print the same JSON, so what the console shows can be
// compared byte for byte with what the tools print.
//
// Nothing here holds a lock or starts a goroutine; a Fold is used by one goroutine.
package logview
