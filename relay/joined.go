package relay

// joinedRooms is a connection's rooms. Most connections hold one or two,
// and a Go map costs a few hundred bytes even for one entry, so it is a
// slice until it holds more than smallRooms and a map from then on. Not
// safe for concurrent use: the connection's mu guards it.
type joinedRooms struct {
	few  []roomJoin         // while many is nil
	many map[string]*joined // once more than smallRooms were held
}

type roomJoin struct {
	name string
	j    *joined
}

// smallRooms is how many rooms the slice holds before the map takes over:
// below it a scan compares fewer strings than a map lookup hashes.
const smallRooms = 8

// get is name's join, or nil.
func (r *joinedRooms) get(name string) *joined {
	if r.many != nil {
		return r.many[name]
	}
	for _, e := range r.few {
		if e.name == name {
			return e.j
		}
	}
	return nil
}

func (r *joinedRooms) len() int {
	if r.many != nil {
		return len(r.many)
	}
	return len(r.few)
}

// set adds name's join, or replaces it.
func (r *joinedRooms) set(name string, j *joined) {
	if r.many != nil {
		r.many[name] = j
		return
	}
	for i := range r.few {
		if r.few[i].name == name {
			r.few[i].j = j
			return
		}
	}
	if len(r.few) < smallRooms {
		r.few = append(r.few, roomJoin{name: name, j: j})
		return
	}
	r.many = make(map[string]*joined, len(r.few)+1)
	for _, e := range r.few {
		r.many[e.name] = e.j
	}
	r.many[name] = j
	r.few = nil
}

// remove drops name, reporting whether it was held.
func (r *joinedRooms) remove(name string) bool {
	if r.many != nil {
		_, ok := r.many[name]
		delete(r.many, name)
		return ok
	}
	for i, e := range r.few {
		if e.name == name {
			last := len(r.few) - 1
			r.few[i] = r.few[last]
			r.few[last] = roomJoin{}
			r.few = r.few[:last]
			return true
		}
	}
	return false
}

// each calls f for every room, in no particular order. f must not add or
// remove rooms.
func (r *joinedRooms) each(f func(name string, j *joined)) {
	if r.many != nil {
		for name, j := range r.many {
			f(name, j)
		}
		return
	}
	for _, e := range r.few {
		f(e.name, e.j)
	}
}
