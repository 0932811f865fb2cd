"""mailwarden: trace spam, read SMTP logs, hunt spambots, audit and prune mail servers."""

__version__ = "0.1.0"
