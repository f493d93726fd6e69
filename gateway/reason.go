package gateway

// SetOfflineReason updates why an offline device is offline (for example a
// transport whose redials keep failing: "dial tcp 192.168.1.50:80: connection
// refused"). Browsers get a status event only when the reason changes, so a
// transport may call it on every failed attempt. It does nothing while the
// device is online.
func (h *Hub) SetOfflineReason(id, reason string) {
	if reason == "" {
		return
	}
	reason = Truncate(toValidUTF8(reason), 512)
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[id]
	if !ok || d.link != nil || d.reason == reason {
		return
	}
	h.statusLocked(d, false, reason)
}
