"""E-mail: rendering, the durable outbox and the SMTP sender (docs/architecture.md)."""
