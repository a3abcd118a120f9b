"""What a call leaves behind: the audit log, stored transcripts and recordings, provider usage."""
