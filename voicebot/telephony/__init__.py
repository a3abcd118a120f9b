"""Telephony media streams: the provider-agnostic serializer interface and the Twilio provider."""
