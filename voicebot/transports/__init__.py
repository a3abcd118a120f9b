"""Transports turn a wire protocol into call events and back; no dialogue logic lives here."""
