"""Notification: who is told about which alerts, when, and never twice.

The stages follow Alertmanager's shape: route (a tree of routes) → group →
inhibit → silence → maintenance → flapping → dedup against the notification
log → deliver to the mail outbox; :mod:`netalert.notify.dispatcher` composes
them (docs/architecture.md, "Notify").
"""
