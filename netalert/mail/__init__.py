"""E-mail: rendering, the durable outbox and the SMTP sender (DESIGN.md, ``mail/``)."""
