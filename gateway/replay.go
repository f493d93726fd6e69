package gateway

// replayRing keeps the recent events and statuses that /ws?since= replays.
// It keeps at least size events whatever the statuses among them, and at
// most 2*size entries so a flapping board cannot grow it. The hub's lock
// guards it.
type replayRing struct {
	size   int        // events kept at least (Options.HistoryLen)
	msgs   []*Message // events and statuses, oldest first
	events int        // events in msgs
	floor  uint64     // every event and status after event floor is still in msgs
}

// add appends m, evicting the oldest entries. Evicting a status raises the
// floor past it, so a resume that would need it gets a snapshot instead of a
// replay that silently lacks it.
func (r *replayRing) add(m *Message) {
	r.msgs = append(r.msgs, m)
	if m.Kind == KindEvent {
		r.events++
	}
	maxLen := 2 * r.size
	chunk := r.size / 8 // evict in chunks, not per message
	if r.events <= r.size+chunk && len(r.msgs) <= maxLen+chunk {
		return
	}
	drop := 0
	for ; drop < len(r.msgs) && (r.events > r.size || len(r.msgs)-drop > maxLen); drop++ {
		old := r.msgs[drop]
		floor := old.Seq
		if old.Kind == KindEvent {
			r.events--
		} else {
			floor++ // a resume from old.Seq would need this status
		}
		r.raiseFloor(floor)
	}
	n := copy(r.msgs, r.msgs[drop:])
	clear(r.msgs[n:])
	r.msgs = r.msgs[:n]
}

// raiseFloor makes a resume from before seq get a snapshot: what happened
// up to it can no longer be replayed (evicted, or the device list changed).
func (r *replayRing) raiseFloor(seq uint64) { r.floor = max(r.floor, seq) }

// since returns what a subscriber that has seen every event up to since
// (the newest being seq) missed: the events after since and the statuses
// from since on, oldest first. ok is false when the ring no longer holds all
// of it (or since is negative or in the future): the subscriber needs a
// snapshot instead.
func (r *replayRing) since(since int64, seq uint64) (missed []*Message, ok bool) {
	if since < 0 || uint64(since) < r.floor || uint64(since) > seq {
		return nil, false
	}
	for _, m := range r.msgs {
		if (m.Kind == KindEvent && m.Seq > uint64(since)) || (m.Kind == KindStatus && m.Seq >= uint64(since)) {
			missed = append(missed, m)
		}
	}
	return missed, true
}
