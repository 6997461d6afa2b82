package relay

// LeaseTableSize exposes the lease tables' size to the external tests.
func (s *Server) LeaseTableSize() int { return s.leases.size() }

// SetRehomeLimits lowers how many misplaced records (and bytes) the relay
// holds until their copies fold.
func (s *Server) SetRehomeLimits(records, bytes int) {
	s.rehome.mu.Lock()
	s.rehome.maxPending, s.rehome.maxBytes = records, bytes
	s.rehome.mu.Unlock()
}
