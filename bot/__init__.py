"""protocolbot: runs looking-at-student-work protocols for teacher teams in Slack."""
