package relay

// LeaseTableSize exposes the lease tables' size to the external tests.
func (s *Server) LeaseTableSize() int { return s.leases.size() }
