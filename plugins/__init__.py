"""voicebot's built-in providers, installed as `voicebot_plugins` and loaded through the
`voicebot` entry-point group exactly like a third-party plugin package."""
