package main

// Counts are what each worker counts and the coordinator sums: publishes,
// deliveries, losses, reconnects and error frames. Result and partial embed
// it, so both keep the same flat JSON field names.
type Counts struct {
	Published        uint64 `json:"published"`
	PublishedWindow  uint64 `json:"published_window"`
	PublishErrors    uint64 `json:"publish_errors"`
	Acked            uint64 `json:"acked"`
	Deliveries       uint64 `json:"deliveries"`
	DeliveriesWindow uint64 `json:"deliveries_window"`

	Expected  uint64 `json:"expected"`
	Lost      uint64 `json:"lost"`
	Dup       uint64 `json:"dup"`
	OOO       uint64 `json:"ooo"`
	RoomsLost int    `json:"rooms_lost"`
	RoomsDup  int    `json:"rooms_dup"`
	RoomsOOO  int    `json:"rooms_ooo"`

	Reconnects       uint64 `json:"reconnects"`
	ReconnectFailed  uint64 `json:"reconnect_failed"`
	ChurnConnects    uint64 `json:"churn_connects"`
	ChurnFailed      uint64 `json:"churn_failed"`
	ChurnDisconnects uint64 `json:"churn_disconnects"`

	ErrorFrames  uint64   `json:"error_frames"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	// LossSamples say who lost what: the first (member, publisher) pairs
	// with acknowledged publishes the member never received.
	LossSamples []string `json:"loss_samples,omitempty"`
}

// add sums o into c, keeping the first 10 error and loss samples (each
// cut at 300 bytes).
func (c *Counts) add(o *Counts) {
	c.Published += o.Published
	c.PublishedWindow += o.PublishedWindow
	c.PublishErrors += o.PublishErrors
	c.Acked += o.Acked
	c.Deliveries += o.Deliveries
	c.DeliveriesWindow += o.DeliveriesWindow
	c.Expected += o.Expected
	c.Lost += o.Lost
	c.Dup += o.Dup
	c.OOO += o.OOO
	c.RoomsLost += o.RoomsLost
	c.RoomsDup += o.RoomsDup
	c.RoomsOOO += o.RoomsOOO
	c.Reconnects += o.Reconnects
	c.ReconnectFailed += o.ReconnectFailed
	c.ChurnConnects += o.ChurnConnects
	c.ChurnFailed += o.ChurnFailed
	c.ChurnDisconnects += o.ChurnDisconnects
	c.ErrorFrames += o.ErrorFrames
	c.ErrorSamples = addSamples(c.ErrorSamples, o.ErrorSamples)
	c.LossSamples = addSamples(c.LossSamples, o.LossSamples)
}

func addSamples(to, from []string) []string {
	for _, e := range from {
		if len(to) < 10 {
			if len(e) > 300 {
				e = e[:300] + "..."
			}
			to = append(to, e)
		}
	}
	return to
}
