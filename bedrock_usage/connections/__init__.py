"""AWS account connections: verification, encrypted credentials, the event log."""
